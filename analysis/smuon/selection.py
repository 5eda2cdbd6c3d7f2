"""The preselection of the smuon search and its cut-and-count strategies (seed 002 Table 1,
Table 3 and sec. III.5; docs/smuon.md sec. 2 and 4).

:func:`preselection_steps` are the named, ordered steps of the cutflow. After them an event
enters a strategy's signal region when it passes:

* ``nn_low`` / ``nn_high``: the low- or high-mass network's score > the analysis threshold
  (0.7; the network is the final cut);
* ``static_veto``: no wide jet with pT above the static threshold (25 GeV);
* ``dyn_<h>_<l>``: the dynamic jet veto comparing the hadronic proxy h (``jet1``: the leading
  jet's pT, ``ht``: H_T) with the leptonic proxy l (``mu1``: the leading muon's pT, ``st``: the
  muons' scalar pT sum, ``st_met``: S_T + p_T^miss): the event is vetoed when h > l.
"""

from __future__ import annotations

import numpy as np

from .config import JetVetoes, Preselection


def preselection_steps(features: dict[str, np.ndarray], charge_product: np.ndarray, n_taus: np.ndarray,
                       cuts: Preselection) -> list[tuple[str, np.ndarray]]:
    """The ordered preselection steps (name, mask), starting with ``all``."""
    n = features["met"].size
    steps = [
        ("all", np.ones(n, bool)),
        ("met", features["met"] > cuts.met),
        ("two_muons", features["n_muons"] == cuts.n_muons),
        ("opposite_charge", charge_product < 0),
        ("muon_pt", (features["muon1_pt"] > cuts.leading_muon_pt) & (features["muon2_pt"] > cuts.subleading_muon_pt)),
        ("mt2", features["mt2"] > cuts.mt2),
    ]
    if cuts.lepton_veto:
        steps.append(("lepton_veto", (features["n_electrons"] == 0) & (np.asarray(n_taus) == 0)))
    return steps


def hadronic_proxy(features: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The hadronic activity proxy ``jet1`` (leading jet pT, 0 without jets) or ``ht``."""
    if name == "jet1":
        return np.where(features["n_jets"] > 0, features["jet1_pt"], 0.0)
    if name == "ht":
        return features["ht"]
    raise ValueError(f"unknown hadronic proxy {name!r}")


def leptonic_proxy(features: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The leptonic activity proxy ``mu1``, ``st`` or ``st_met``."""
    if name == "mu1":
        return features["muon1_pt"]
    if name == "st":
        return features["st"]
    if name == "st_met":
        return features["st"] + features["met"]
    raise ValueError(f"unknown leptonic proxy {name!r}")


def dynamic_veto_names(cuts: JetVetoes) -> list[str]:
    return [f"dyn_{h}_{lep}" for h in cuts.hadronic_proxies for lep in cuts.leptonic_proxies]


def veto_regions(features: dict[str, np.ndarray], cuts: JetVetoes) -> dict[str, np.ndarray]:
    """Pass masks of the static veto and of every dynamic veto (to be and-ed with the
    preselection)."""
    out = {"static_veto": hadronic_proxy(features, "jet1") <= cuts.static_pt}
    for h in cuts.hadronic_proxies:
        for lep in cuts.leptonic_proxies:
            out[f"dyn_{h}_{lep}"] = hadronic_proxy(features, h) <= leptonic_proxy(features, lep)
    return out
