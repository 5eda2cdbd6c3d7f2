"""Configuration of the smuon search (seed 002; docs/smuon.md): every cut, constant and
choice, as validated data with its source.

The seed's text lost several numbers (cut values of its Table 1, cone sizes, the SGD
settings, the pessimistic background uncertainty). Where it did, the value here is taken
from the practice of the CMS and ATLAS slepton searches it cites (CMS, PLB 790 (2019) 140,
1806.05264: "CMS-SUS-17-009"; ATLAS, EPJC 80 (2020) 123, 1908.08215: "ATLAS-2L0J"), or is a
stated choice; each field's comment says which ("seed" where the seed gives the number).
docs/smuon.md sec. 2 lists them again.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from analysis.configuration import AnalysisConfig, ConfigModel

#: the pseudo-era of the smuon samples: seed 002's Run 2 (139 fb^-1, 13 TeV)
ERA = "run2"
#: luminosities of the sensitivity study (fb^-1): Run 2, Run 3, HL-LHC (seed 002 sec. IV)
LUMINOSITIES_FB: tuple[float, ...] = (139.0, 300.0, 3000.0)
#: the value of a feature of an absent object (seed 002 footnote 2: "a large negative number")
NULL_VALUE = -999.0


class LeptonCuts(ConfigModel):
    """A lepton or photon selection: pT > pt (GeV), |eta| < eta, relative isolation < rel_iso
    (PF, cone 0.3; seed: the cone's energy below a fraction of the object's pT)."""

    pt: float
    eta: float
    rel_iso: float | None = None


class ObjectCuts(ConfigModel):
    """Signal objects (seed 002 sec. II)."""

    #: muons pT > 10, |eta| < 2.4 (CMS-SUS-17-009), relative isolation < 0.15 (CMS tight)
    muons: LeptonCuts = LeptonCuts(pt=10.0, eta=2.4, rel_iso=0.15)
    #: electrons pT > 10, |eta| < 2.5 (CMS-SUS-17-009), isolation as the muons'
    electrons: LeptonCuts = LeptonCuts(pt=10.0, eta=2.5, rel_iso=0.15)
    #: hadronic taus pT > 20, |eta| < 2.3 (CMS tau ID acceptance)
    taus: LeptonCuts = LeptonCuts(pt=20.0, eta=2.3)
    #: photons pT > 15, |eta| < 2.5, isolation < 0.15
    photons: LeptonCuts = LeptonCuts(pt=15.0, eta=2.5, rel_iso=0.15)
    #: wide jets: anti-kt with R = 1.0 (HackAnalysis' FATJET detector; seed: "a wide radius
    #: parameter"), reclustered from the reconstructed jets above jet_input_pt; kept with
    #: pT > 20 GeV and |eta| < 2.4 (choice: CMS-SUS-17-009's jet acceptance, ATLAS-2L0J's 20 GeV)
    jet_radius: float = 1.0
    jet_input_pt: float = 15.0
    jet_pt: float = 20.0
    jet_eta: float = 2.4


class OverlapRemoval(ConfigModel):
    """Overlap removal (seed 002 sec. II, cone sizes ATLAS-2L0J's): jets within dr_jet_mu_gamma
    of muons and photons and within dr_jet_e_tau of electrons and taus are removed; then
    electrons within dr_e_jet of the remaining jets, and photons within dr_gamma_lepton of
    electrons and muons."""

    dr_jet_mu_gamma: float = 0.4
    dr_jet_e_tau: float = 0.2
    dr_e_jet: float = 0.4
    dr_gamma_lepton: float = 0.4


class Preselection(ConfigModel):
    """The preselection (seed 002 Table 1 and Table 3's cutflow; values CMS-SUS-17-009's)."""

    #: "basic cuts": p_T^miss > 100 GeV (CMS-SUS-17-009; it reproduces the seed's Table 3
    #: efficiencies of this step, 24% ttbar, 10% WW, 8% ZZ)
    met: float = 100.0
    #: exactly two isolated muons, of opposite charge (seed)
    n_muons: int = 2
    #: pT(mu1) > 25, pT(mu2) > 20 GeV (CMS-SUS-17-009; seed Table 8's static-veto selection)
    leading_muon_pt: float = 25.0
    subleading_muon_pt: float = 20.0
    #: the additional cut imposed on the dataset: M_T2(mu mu) > 90 GeV (CMS-SUS-17-009's
    #: M_T2(ll) > 90 GeV; it removes ttbar and WW, whose M_T2 ends at m_W)
    mt2: float = 90.0
    #: "Lepton": no further selected electron or hadronic tau (veto)
    lepton_veto: bool = True


class JetVetoes(ConfigModel):
    """The cut-and-count baselines of seed 002 sec. III.5."""

    #: static jet veto: no wide jet above 25 GeV (seed Table 8)
    static_pt: float = 25.0
    #: dynamic jet vetoes (Fuks, Nordstrom, Ruiz, Williamson, PRD 100 (2019) 074010, "Sleptons
    #: without hadrons"; seed eq. 3): an event is vetoed when its hadronic activity exceeds its
    #: leptonic activity, each estimated by a proxy: hadronic ("jet1": the leading jet's pT,
    #: "ht": H_T) x leptonic ("mu1": the leading muon's pT, "st": the scalar sum of the muons'
    #: pT, "st_met": that sum plus p_T^miss) -- six vetoes
    hadronic_proxies: tuple[str, ...] = ("jet1", "ht")
    leptonic_proxies: tuple[str, ...] = ("mu1", "st", "st_met")


class NetworkTraining(ConfigModel):
    """The two networks (seed 002 sec. III, Table 5)."""

    #: 37 inputs (27 low/high-level + 10 derived), two hidden layers of 50, one sigmoid output
    hidden: tuple[int, ...] = (50, 50)
    #: hidden activation (seed Table 5: ReLU; its text calls the layers' activation sigmoid,
    #: which the output is)
    activation: str = "relu"
    #: Gaussian initialization of weights and biases, N(0, init_std) (seed: normal; sigma lost,
    #: choice ~ 1/sqrt(37))
    init_std: float = 0.15
    #: SGD with momentum (seed); learning rate, momentum and weight decay lost: common values
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1.0e-5
    batch_size: int = 32
    #: epochs: the seed trains 500 (hours); the shipped networks are trained for `epochs` on
    #: the toy sample (minutes on 2 cores), the best epoch chosen as the seed does
    epochs: int = 40
    #: the metrics' threshold during training and the analysis cut (seed: 0.5 and 0.7)
    training_threshold: float = 0.5
    analysis_threshold: float = 0.7
    #: train:validation:test (seed: 8:1:1), balanced: equal numbers of events per signal and
    #: background component in the training set
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    #: events per class of the balanced training set at most (the larger class' size below it;
    #: a CPU budget: an epoch of 2 x 40000 events takes a few seconds)
    max_per_class: int = 40_000
    seed: int = 7
    #: the low-mass network is trained on the benchmarks with m_smuon <= low_mass_max, the
    #: high-mass one on those above (seed: two sets of smuon masses; the boundary lost)
    low_mass_max: float = 250.0


class Sensitivity(ConfigModel):
    """Expected exclusion (seed 002 sec. IV)."""

    luminosities_fb: tuple[float, ...] = LUMINOSITIES_FB
    #: optimistic: no background uncertainty; pessimistic: a log-normal background
    #: normalization uncertainty of 20% (seed's number lost; choice: the order of the
    #: systematic uncertainties of ATLAS-2L0J's signal regions)
    background_uncertainties: tuple[float, ...] = (0.0, 0.20)
    #: relative uncertainty on the signal yield in the fit (none: as the seed)
    signal_uncertainty: float = 0.0
    cls_level: float = 0.05


class SmuonConfig(AnalysisConfig):
    """The smuon search with a neural-network final cut (docs/smuon.md)."""

    eras: tuple[str, ...] = (ERA,)
    lumi_fb: dict[str, float] = Field(default_factory=lambda: {ERA: LUMINOSITIES_FB[0]})
    metadata_keys: dict[str, str] = Field(default_factory=lambda: {"m_smuon": "float", "m_neutralino": "float"})
    objects: ObjectCuts = ObjectCuts()
    overlap: OverlapRemoval = OverlapRemoval()
    preselection: Preselection = Preselection()
    vetoes: JetVetoes = JetVetoes()
    training: NetworkTraining = NetworkTraining()
    sensitivity: Sensitivity = Sensitivity()
    null_value: float = NULL_VALUE

    @model_validator(mode="after")
    def _check(self):
        known_h, known_l = {"jet1", "ht"}, {"mu1", "st", "st_met"}
        bad = [p for p in self.vetoes.hadronic_proxies if p not in known_h] + \
              [p for p in self.vetoes.leptonic_proxies if p not in known_l]
        if bad:
            raise ValueError(f"unknown dynamic-veto proxies {bad}: hadronic {sorted(known_h)}, leptonic {sorted(known_l)}")
        if abs(sum(self.training.split) - 1.0) > 1e-9:
            raise ValueError(f"training.split must add up to 1, got {self.training.split}")
        if not 0.0 < self.training.analysis_threshold < 1.0:
            raise ValueError("training.analysis_threshold must lie in (0, 1)")
        return self
