"""Event quantities around R&S: the jets entering it, the b-jet count of the prior category,
p_T^miss of smeared events, and the closure and response (seed 004 Fig. 2, 4) summaries.

numpy in, numpy out; the analysis passes its thresholds (jet pT, b-tag working point).
"""

from __future__ import annotations

import numpy as np

from analysis.rs.defaults import RS_JET_ETA_MAX


def rs_jet_mask(pt, eta, pt_min: float, eta_max: float = RS_JET_ETA_MAX):
    """Jets entering R&S (seed 004 sec. 2.4.2, docs/physics.md sec. 2): pT > ``pt_min`` (the
    analysis' R&S jet threshold, 15 GeV in seed 004), |eta| < ``eta_max``.
    Works on numpy and (jagged) awkward arrays alike.

    NaN jets are kept in the mask on purpose: the kernels count NaN events separately
    (``nan_input``) instead of silently dropping the jet."""
    nan = ~(np.isfinite(pt) & np.isfinite(eta))
    with np.errstate(invalid="ignore"):
        return ((pt > pt_min) & (abs(eta) < eta_max)) | nan


def bjet_count(pt, eta, btag, offsets, *, pt_min: float, eta_max: float,
               btag_min: float) -> np.ndarray:
    """b-tagged jets per event (pT > ``pt_min``, |eta| < ``eta_max``, score > ``btag_min``: the
    analysis' b tag, docs/physics.md sec. 2):
    the b-jet category of the priors (seed 004 sec. 2.4.2) for templates and seeds alike."""
    off = np.asarray(offsets, dtype=np.int64)
    p, e, b = (np.asarray(a, dtype=np.float64) for a in (pt, eta, btag))
    with np.errstate(invalid="ignore"):
        tagged = (p > pt_min) & (np.abs(e) < eta_max) & (b > btag_min)
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    return np.bincount(ev, tagged, off.size - 1).astype(np.int64)


def met_after_smearing(met_pt, met_phi, seed_pt, seed_phi, smeared_pt, smeared_phi,
                       smeared_offsets) -> tuple[np.ndarray, np.ndarray]:
    """p_T^miss of smeared events: the seed's p_T^miss minus the change of the jets,
    MET_smeared = MET_seed - sum_i (pT_i,smeared - pT_i,seed) (vectors) (seed 004 sec. 2.6:
    leptons, photons and the unclustered energy stay as measured).

    ``met_pt``/``met_phi`` are per smeared event (the seed's); ``seed_pt``/``seed_phi`` are the
    original reco pT and phi of each smeared jet (flat, same layout as ``smeared_pt``); the
    smeared azimuth differs from the seed's when the rebalancing fits the directions.
    """
    off = np.asarray(smeared_offsets, dtype=np.int64)
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    spt, sphi = np.asarray(smeared_pt, dtype=np.float64), np.asarray(smeared_phi, dtype=np.float64)
    opt, ophi = np.asarray(seed_pt, dtype=np.float64), np.asarray(seed_phi, dtype=np.float64)
    n = off.size - 1
    dx = np.bincount(ev, spt * np.cos(sphi) - opt * np.cos(ophi), n)
    dy = np.bincount(ev, spt * np.sin(sphi) - opt * np.sin(ophi), n)
    mx = np.asarray(met_pt) * np.cos(met_phi) - dx
    my = np.asarray(met_pt) * np.sin(met_phi) - dy
    return np.hypot(mx, my), np.arctan2(my, mx)


def closure_bins(pred, pred_unc, sim, sim_unc, edges) -> list[dict]:
    """Per-bin closure entries: edges, predicted (+- bootstrap std), simulated (+- sqrt(sum w^2)),
    ratio prediction/simulation (None where the simulation is empty)."""
    out = []
    for i in range(len(pred)):
        s = float(sim[i])
        out.append({
            "edges": [float(edges[i]), float(edges[i + 1])],
            "predicted": float(pred[i]), "predicted_unc": float(pred_unc[i]),
            "simulated": s, "simulated_unc": float(sim_unc[i]),
            "ratio": float(pred[i]) / s if s > 0 else None,
        })
    return out


def response_summary(counts, edges, window: float) -> dict[str, float]:
    """Numbers of a response histogram (seed 004 Fig. 2): entries, mean, RMS, the 16-84%
    half-width and the fraction with |response - 1| < ``window``."""
    h = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    c = 0.5 * (e[1:] + e[:-1])
    n = h.sum()
    if n <= 0:
        return {"entries": 0.0, "mean": float("nan"), "rms": float("nan"),
                "half_width_68": float("nan"), "core_fraction": float("nan")}
    mean = float((h * c).sum() / n)
    rms = float(np.sqrt((h * (c - mean) ** 2).sum() / n))
    cdf = np.concatenate([[0.0], np.cumsum(h) / n])
    q16, q84 = np.interp([0.16, 0.84], cdf, e)
    core = float(h[np.abs(c - 1.0) < window].sum() / n)
    return {"entries": float(n), "mean": mean, "rms": rms, "half_width_68": float(0.5 * (q84 - q16)),
            "core_fraction": core}
