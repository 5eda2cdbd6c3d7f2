"""The smuon search's processor (docs/smuon.md): objects, the 37 features, the
preselection with its cutflow, the networks' final cut through ONNX Runtime, the jet
vetoes, and the histograms of every strategy's signal region. Wiring only: the physics is
in analysis/smuon/, the networks in models/smuon/.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np

from analysis.errors import InputFileError
from analysis.smuon.config import SmuonConfig
from analysis.smuon.features import event_features, feature_matrix
from analysis.smuon.objects import signal_objects
from analysis.smuon.selection import dynamic_veto_names, preselection_steps, veto_regions
from models.smuon.inference import NETWORKS, SmuonNetwork
from processors.base import AnalysisProcessor, Chunk, selection_from_steps
from processors.histograms import HistogramSpec

#: the score of an event the networks do not evaluate (not preselected)
NO_SCORE = -1.0
#: histograms of the preselected events: observable -> (bins, low, high, label)
PRESELECTION_HISTOGRAMS: dict[str, tuple[int, float, float, str]] = {
    "met": (30, 0.0, 600.0, r"$p_T^{miss}$ [GeV]"),
    "mt2": (30, 0.0, 600.0, r"$M_{T2}$ [GeV]"),
    "m_ll": (30, 0.0, 900.0, r"$m_{\mu\mu}$ [GeV]"),
    "mct": (30, 0.0, 900.0, r"$M_{CT}$ [GeV]"),
    "ht": (30, 0.0, 600.0, r"$H_T$ [GeV]"),
    "n_jets": (8, -0.5, 7.5, "wide jets"),
    "muon1_pt": (30, 0.0, 600.0, r"$p_T(\mu_1)$ [GeV]"),
    "score_low": (20, 0.0, 1.0, "low-mass network score"),
    "score_high": (20, 0.0, 1.0, "high-mass network score"),
}


class NetworkHashes:
    """What the runner's provenance records of the networks (``scorer.hashes()``: name -> sha256)."""

    def __init__(self, networks: Mapping[str, SmuonNetwork]):
        self.networks = networks

    def hashes(self) -> dict[str, str]:
        return {f"smuon_nn_{name}": net.sha256 for name, net in self.networks.items()}


def strategy_names(config: SmuonConfig, networks: Mapping[str, object]) -> list[str]:
    """The signal regions: nn_<network> for each network held, static_veto, the dynamic vetoes."""
    return [*(f"nn_{n}" for n in NETWORKS if n in networks), "static_veto", *dynamic_veto_names(config.vetoes)]


class SmuonProcessor(AnalysisProcessor):
    """Two isolated opposite-sign muons + p_T^miss; the networks' score as the final cut.

    Parameters
    ----------
    networks : "low"/"high" -> :class:`models.smuon.inference.SmuonNetwork` (empty: no NN regions).
    store_features : also return the preselected events' feature matrices and weights
        (``out["features"][dataset]``: a list of {"x", "w"}), for training.
    """

    name = "smuon"
    config_class = SmuonConfig
    finite_inputs = ("genWeight", "MET_pt", "MET_phi", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_pfRelIso03_all",
                     "Electron_pt", "Electron_eta", "Electron_phi", "Electron_pfRelIso03_all", "Jet_pt", "Jet_eta",
                     "Jet_phi", "Jet_mass", "Tau_pt", "Tau_eta", "Tau_phi", "Photon_pt", "Photon_eta", "Photon_phi",
                     "Photon_pfRelIso03_all")

    def __init__(self, config: SmuonConfig | None = None, lumi_fb=None, systematics: bool = True,
                 networks: Mapping[str, SmuonNetwork] | None = None, store_features: bool = False):
        super().__init__(config, lumi_fb, systematics)
        self.networks = dict(networks or {})
        self.store_features = bool(store_features)
        regions = hist.axis.StrCategory(strategy_names(self.config, self.networks), name="region")
        self.histograms = (
            HistogramSpec("sr_mt2", (regions, hist.axis.Regular(30, 0.0, 600.0, name="mt2", label=r"$M_{T2}$ [GeV]")),
                          categories=("dataset",), fill=None),
            *(HistogramSpec(k, (hist.axis.Regular(b, lo, hi, name=k, label=label),), categories=("dataset",))
              for k, (b, lo, hi, label) in PRESELECTION_HISTOGRAMS.items()),
        )

    @property
    def scorer(self) -> NetworkHashes:
        """The networks' hashes for the output's provenance."""
        return NetworkHashes(self.networks)

    def validate(self, fileset) -> None:
        from analysis.errors import ModelError

        for name, net in self.networks.items():
            _ = net.session  # opens the graph: a corrupt file or a wrong width fails here, before any chunk
            if net.network != name:
                raise ModelError(f"{net.path} is the {net.network!r} network, given as {name!r}")

    def objects(self, chunk: Chunk):
        missing = [c for c in ("Muon", "Electron", "Tau", "Photon", "Jet", "MET") if c not in chunk.events.fields]
        if missing:
            raise InputFileError(f"collections {missing} missing from {chunk.metadata.get('filename')}")
        return signal_objects(chunk.events, self.config.objects, self.config.overlap)

    def observables(self, chunk: Chunk, objects):
        ev = chunk.events
        feats = event_features(objects, ak.to_numpy(ev.MET.pt), ak.to_numpy(ev.MET.phi), self.config.null_value)
        q = ak.pad_none(objects["muons"].charge, 2, clip=True)
        feats["charge_product"] = ak.to_numpy(ak.fill_none(q[:, 0] * q[:, 1], 0)).astype(np.float64)
        feats["n_taus"] = ak.to_numpy(ak.num(objects["taus"])).astype(np.float64)
        two = (feats["n_muons"] == 2) & (feats["mt2"] > 0)
        for name in NETWORKS:
            score = np.full(chunk.size, NO_SCORE)
            if name in self.networks and two.any():
                score[two] = self.networks[name].score(feature_matrix(feats, two))
            feats[f"score_{name}"] = score
        return feats

    def selection(self, chunk: Chunk, objects, observables):
        return selection_from_steps(preselection_steps(observables, observables["charge_product"],
                                                       observables["n_taus"], self.config.preselection))

    def categories(self, chunk: Chunk, objects, observables, selected, variation):
        regions = {f"nn_{n}": observables[f"score_{n}"] > self.networks[n].threshold for n in self.networks}
        regions |= veto_regions(observables, self.config.vetoes)
        return {k: v & selected for k, v in regions.items()}

    def fill(self, hists, chunk, objects, observables, selected, weights, categories, variation):
        w = weights.weight()
        for spec in self.histograms[1:]:
            hists[spec.name].fill(dataset=chunk.dataset, **{spec.name: observables[spec.name][selected]},
                                  weight=w[selected])
        for region, mask in categories.items():
            hists["sr_mt2"].fill(dataset=chunk.dataset, region=region, mt2=observables["mt2"][mask], weight=w[mask])

    def process(self, events):
        out = super().process(events)
        if self.store_features:
            chunk = Chunk(events, dict(events.metadata))
            finite = self.finite_events(chunk)
            chunk = chunk if finite.all() else Chunk(events[finite], chunk.metadata)
            objects = self.objects(chunk)
            obs = self.observables(chunk, objects)
            sel = self.selection(chunk, objects, obs)
            passed = sel.all(*sel.names)
            w = self.weights(chunk, objects).weight()
            out["features"] = {chunk.dataset: [{"x": feature_matrix(obs, passed), "w": w[passed]}]}
        return out
