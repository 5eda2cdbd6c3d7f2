"""Configuration of the semi-visible-jet search: every cut, binning and constant, with its source.

The source of each value is the seed talk, "A Supervised Machine-Learning Search for
Semi-Visible Jets in CMS Run-2 Scouting Data" (cited as "SVJ talk" with its slide title), or
docs/svj.md where the value is this repository's choice.
"""

from __future__ import annotations

from pydantic import Field

from analysis.configuration import AnalysisConfig, ConfigModel


class Trigger(ConfigModel):
    """Scouting trigger: H_T = scalar sum of AK4 jet p_T (SVJ talk, "Lowering Trigger
    Thresholds: HLT-Scouting": H_T > 410 GeV; offline 1080 GeV)."""

    ht: float = 410.0
    jet_pt: float = 30.0  # AK4 jets entering H_T (CMS H_T convention)
    jet_eta: float = 2.5


class Preselection(ConfigModel):
    """SVJ talk, "I) Trigger & Preselection" table."""

    n_fatjets: int = 2
    fatjet_pt: float = 150.0
    fatjet_eta: float = 2.4
    mt: float = 650.0  # M_T > 650 GeV (trigger efficiency)
    rt: float = 0.24  # R_T = p_T^miss / M_T > 0.24
    dphi_min: float = 0.8  # min DeltaPhi(J0/J1, p_T^miss) < 0.8
    deta_signal_plane: float = 2.2  # |DeltaEta(J0, J1)| < 2.2: SP; beyond: VP


class Lund(ConfigModel):
    """Primary Lund declusterings of the C/A-reclustered AK8 jet (SVJ talk, "Supervised SVJ
    Tagging via LundNet": recluster with C/A, follow the hardest branch; Dreyer, Qu, "Jet
    tagging in the Lund plane with graph networks", arXiv:2012.08526, sec. 2)."""

    #: C/A radius of the reclustering: above the largest pairwise distance in an AK8 jet (2 x
    #: 0.8), so the whole jet is one C/A tree (docs/svj.md)
    ca_radius: float = 2.0
    #: declusterings kept per jet (the padded graph's nodes; docs/svj.md: 99% of the toy jets have at most 18)
    max_nodes: int = 20
    #: declusterings with k_t below this are dropped (arXiv:2012.08526 sec. 3: ln k_t > 0)
    kt_min: float = 0.0


class Split(ConfigModel):
    """Train / validation / test split (SVJ talk, "3D-ABCDisCoTEC Method": 40/20/40), by the
    event number: (event mod 5) in {0, 1} train, {2} validation, {3, 4} test."""

    modulus: int = 5
    train: tuple[int, ...] = (0, 1)
    validation: tuple[int, ...] = (2,)
    test: tuple[int, ...] = (3, 4)


class WorkingPoint(ConfigModel):
    """ABCD boundaries on the two event-tagger scores X, Y and the scan rules (SVJ talk,
    "Boundary Optimization - Grid Scan" and "FOM Details")."""

    x: float = 0.5
    y: float = 0.5
    grid_points: int = 33
    grid_low: float = 0.1
    grid_high: float = 0.9
    min_chi2_pvalue: float = 0.90
    max_nonclosure: float = 0.05
    max_pull: float = 2.0
    max_signal_contamination: float = 0.35
    #: a point is "on a plateau" when its 8 neighbours also pass the p-value rule
    plateau_neighbours: int = 8
    #: when no point is on a plateau but every other rule is passed somewhere, use the largest
    #: <Z> passing the p-value rule at the point itself and every other rule (False: the
    #: configured x, y; analysis.svj.abcd.choose_point)
    relax_plateau: bool = True


class Statistics(ConfigModel):
    """Binned ABCD in M_T (SVJ talk, "Statistical Inference: Expected Limits"); bins docs/svj.md."""

    mt_edges: tuple[float, ...] = (650.0, 800.0, 1000.0, 1300.0, 1800.0, 4000.0)
    #: per-bin non-closure systematic: max(|delta_i| of the SP MC closure, its statistical
    #: uncertainty), at least this floor, plus a significant VP non-closure (docs/svj.md)
    nonclosure_floor: float = 0.02
    cls_level: float = 0.05


class SVJConfig(AnalysisConfig):
    """The semi-visible-jet search (docs/svj.md)."""

    trigger: Trigger = Trigger()
    preselection: Preselection = Preselection()
    lund: Lund = Lund()
    split: Split = Split()
    working_point: WorkingPoint = WorkingPoint()
    statistics: Statistics = Statistics()
    #: the Run-2 scouting luminosity of the 2018 toy era (CMS Run-2 2018 luminosity)
    eras: tuple[str, ...] = ("2018",)
    lumi_fb: dict[str, float] = Field(default_factory=lambda: {"2018": 59.8})
    metadata_keys: dict[str, str] = Field(default_factory=lambda: {"m_zprime": "float", "r_inv": "float"})
