"""Pure functions around the R&S kernels for the processors and the closure (SPEC.md sec. 8,
seed 004 sec. 2-4): seed-jet bookkeeping, templates and priors from mergeable histograms,
batched smearing with an exact hard-MHT skim, p_T^miss of smeared events, the seed-004
pre-selection/baseline, and the closure and Fig. 2 summaries.

No file I/O and no coffea here: numpy in, numpy (or the kernel dataclasses) out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import rebalance_smear as rs
from .config import (
    OBJECT_CUTS,
    RS_BASELINE_MHT,
    RS_FIG2_CORE_WINDOW,
    RS_JET_ETA_MAX,
    RS_N_BJET_CATEGORIES,
    RS_PREDICTION_SKIM_MHT,
    RS_PRESELECTION_MHT,
    RS_PRESELECTION_MIN_JETS,
    RS_PRIOR_DPHI_EDGES,
    RS_PRIOR_DPHI_MHT_EDGES,
    RS_PRIOR_HT_EDGES,
    RS_PRIOR_MHT_EDGES,
    RS_PRIOR_TAIL_QUANTILE,
    RS_RESPONSE_EDGES,
    RS_SMEAR_BATCH_EVENTS,
    RS_TEMPLATE_ABSETA_EDGES,
    RS_TEMPLATE_PT_EDGES,
    RS_TEMPLATE_SMOOTH_SIGMA,
)
from .errors import ConfigError

__all__ = [
    "offsets_from_counts",
    "rs_jet_mask",
    "bjet_count",
    "prior_event_values",
    "templates_from_histogram",
    "priors_from_histograms",
    "SmearedBatch",
    "smear_skimmed",
    "met_after_smearing",
    "seed004_steps",
    "closure_bins",
    "response_summary",
]


def offsets_from_counts(counts) -> np.ndarray:
    """Event offsets (length n + 1, starting at 0) from per-event counts."""
    c = np.asarray(counts, dtype=np.int64)
    off = np.zeros(c.size + 1, dtype=np.int64)
    np.cumsum(c, out=off[1:])
    return off


def rs_jet_mask(pt, eta):
    """Jets entering R&S (seed 004 sec. 2.4.2, SPEC.md sec. 2): pT > 15 GeV, |eta| < 5.
    Works on numpy and (jagged) awkward arrays alike.

    NaN jets are kept in the mask on purpose: the kernels count NaN events separately
    (``nan_input``) instead of silently dropping the jet."""
    nan = ~(np.isfinite(pt) & np.isfinite(eta))
    with np.errstate(invalid="ignore"):
        return ((pt > OBJECT_CUTS.jet_pt_rs) & (abs(eta) < RS_JET_ETA_MAX)) | nan


def bjet_count(pt, eta, btag, offsets) -> np.ndarray:
    """b-tagged jets per event (pT > 30 GeV, |eta| < 2.4, score > loose WP; SPEC.md sec. 2):
    the b-jet category of the priors (seed 004 sec. 2.4.2) for templates and seeds alike."""
    off = np.asarray(offsets, dtype=np.int64)
    p, e, b = (np.asarray(a, dtype=np.float64) for a in (pt, eta, btag))
    with np.errstate(invalid="ignore"):
        tagged = (p > OBJECT_CUTS.jet_pt) & (np.abs(e) < OBJECT_CUTS.jet_eta) & (b > OBJECT_CUTS.btag_loose)
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    return np.bincount(ev, tagged, off.size - 1).astype(np.int64)


def prior_event_values(gen_pt, gen_eta, gen_phi, gen_offsets) -> tuple[np.ndarray, np.ndarray]:
    """True hard MHT (GeV) and DeltaPhi(hard MHT, leading jet) (rad) per event from true jets
    (gen jets, or :func:`analysis.rebalance_smear.prior_jets`), exactly as
    :func:`analysis.rebalance_smear.build_priors` computes them (pT > 15 GeV, |eta| < 5;
    seed 004 eq. 2.6). DeltaPhi is NaN for events without such a jet."""
    info = rs.hard_mht(gen_pt, gen_eta, gen_phi, gen_offsets, OBJECT_CUTS.jet_pt_rs, RS_JET_ETA_MAX)
    dphi = np.abs(np.angle(np.exp(1j * (info["mht_phi"] - info["leading_phi"]))))
    return info["mht"], dphi


def templates_from_histogram(
    counts,
    pt_edges=RS_TEMPLATE_PT_EDGES,
    eta_edges=RS_TEMPLATE_ABSETA_EDGES,
    response_edges=RS_RESPONSE_EDGES,
    *,
    smooth_sigma: float = RS_TEMPLATE_SMOOTH_SIGMA,
    interpolate_pt: bool = True,
) -> rs.JetResponseTemplates:
    """Response templates (seed 004 sec. 2.4.1) from a histogram of matched pairs.

    ``counts`` has shape (n_pt, n_eta, n_response) in the given edges (the accumulator of
    the templates processor, which merges exactly across chunks). Each filled bin is handed
    to :func:`analysis.rebalance_smear.build_response_templates` as one weighted pair at the
    bin centers, so smoothing, normalization and empty-bin filling are those of the kernels.
    """
    h = np.asarray(counts, dtype=np.float64)
    pte, ete, rde = (np.asarray(e, dtype=np.float64) for e in (pt_edges, eta_edges, response_edges))
    shape = (pte.size - 1, ete.size - 1, rde.size - 1)
    if h.shape != shape:
        raise ConfigError(f"response histogram must have shape {shape}, got {h.shape}")
    ipt, ieta, ir = np.nonzero(h > 0)
    gen_pt = 0.5 * (pte[ipt] + pte[ipt + 1])
    gen_eta = 0.5 * (ete[ieta] + ete[ieta + 1])
    resp = 0.5 * (rde[ir] + rde[ir + 1])
    return rs.build_response_templates(
        resp * gen_pt, gen_pt, gen_eta, pte, ete, rde, weights=h[ipt, ieta, ir],
        smooth_sigma=smooth_sigma, interpolate_pt=interpolate_pt,
    )


def priors_from_histograms(
    sumw,
    sumwx,
    count,
    dphi_hist,
    mht_edges=RS_PRIOR_MHT_EDGES,
    dphi_mht_edges=RS_PRIOR_DPHI_MHT_EDGES,
    dphi_edges=RS_PRIOR_DPHI_EDGES,
    ht_edges=RS_PRIOR_HT_EDGES,
    *,
    tail_quantile: float = RS_PRIOR_TAIL_QUANTILE,
) -> rs.RebalancePriors:
    """Priors of seed 004 sec. 2.4.2 from mergeable histograms, equal to
    :func:`analysis.rebalance_smear.build_priors` on the same events.

    Parameters
    ----------
    sumw, sumwx, count : array_like, shape (n_ht, n_nb, n_mht + 1)
        Per H_T bin, b-jet category and true-hard-MHT bin (last column: overflow above the
        last edge): sum of weights, sum of weight x hard MHT, and unweighted events. These are
        sufficient for the exponential tail of ``build_priors`` (its start is a bin edge and
        its slope the weighted mean distance beyond it). Shape (n_nb, n_mht + 1) is read as
        one H_T bin spanning ``ht_edges``.
    dphi_hist : array_like, shape (n_nb, n_mht_coarse, n_dphi)
        Weighted histogram of (hard MHT, DeltaPhi) per category (no overflow).
    """
    sw, sx, cnt = (np.asarray(a, dtype=np.float64) for a in (sumw, sumwx, count))
    he = np.asarray(ht_edges, dtype=np.float64)
    if sw.ndim == 2:
        sw, sx, cnt = sw[None], sx[None], cnt[None]
        he = he[[0, -1]]
    return rs.priors_from_sums(sw, sx, cnt, dphi_hist, mht_edges, dphi_mht_edges, dphi_edges, he,
                               tail_quantile=tail_quantile)


@dataclass(frozen=True)
class SmearedBatch:
    """Smeared events that pass the hard-MHT skim (flat jets, event arrays).

    Attributes
    ----------
    pt, eta, phi : ndarray
        Smeared jets (seed order, not pT-sorted).
    source : ndarray of int64
        Index of each jet in the flat seed-jet arrays given to :func:`smear_skimmed`.
    offsets : ndarray of int64
        Event offsets of the skimmed smeared events.
    event_index : ndarray of int64
        Seed event of each smeared event.
    weight : ndarray
        Seed weight / n_smear (seed 004 sec. 2.2).
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    source: np.ndarray
    offsets: np.ndarray
    event_index: np.ndarray
    weight: np.ndarray


def smear_skimmed(
    rebalanced_pt, eta, phi, offsets, keep, templates: rs.JetResponseTemplates, *,
    seed: int, file_id: str, entry, n_smear: int, event_weight=None,
    skim_mht: float = RS_PREDICTION_SKIM_MHT, batch_events: int = RS_SMEAR_BATCH_EVENTS,
) -> Iterator[tuple[SmearedBatch, float, int]]:
    """Smear the kept rebalanced events (seed 004 sec. 2.2) in batches of seed events and keep
    only smeared events with hard MHT (eq. 2.6) > ``skim_mht``.

    The random numbers depend only on (seed, file, entry, replica, jet) (:func:`rs.smear`), so
    batching does not change the result. Yields ``(batch, smeared_weight, n_smeared)``: the
    skimmed events and the total weight and number of smeared events of the batch before the
    skim (for the cutflow).
    """
    p = np.asarray(rebalanced_pt, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    ent = np.asarray(entry, dtype=np.int64)
    n_ev = off.size - 1
    ew = np.ones(n_ev) if event_weight is None else np.asarray(event_weight, dtype=np.float64)
    kept = np.flatnonzero(np.asarray(keep, dtype=bool))
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    for start in range(0, kept.size, max(int(batch_events), 1)):
        sel = kept[start:start + batch_events]
        counts = off[sel + 1] - off[sel]
        sub_off = offsets_from_counts(counts)
        src = np.repeat(off[sel] - sub_off[:-1], counts) + np.arange(sub_off[-1])
        sm = rs.smear(p[src], eta[src], phi[src], sub_off, templates, seed=seed, file_id=file_id,
                      entry=ent[sel], n_smear=n_smear, event_weight=ew[sel])
        info = rs.hard_mht(sm.pt, sm.eta, sm.phi, sm.offsets)
        with np.errstate(invalid="ignore"):
            passed = np.flatnonzero(info["mht"] > skim_mht)
        cnt = np.diff(sm.offsets)[passed]
        out_off = offsets_from_counts(cnt)
        jets = np.repeat(sm.offsets[passed] - out_off[:-1], cnt) + np.arange(out_off[-1])
        # smear() keeps the jet order of each event: the source jet is found by position
        local = jets - np.repeat(sm.offsets[passed], cnt)
        seed_ev = sel[sm.event_index[passed]]
        source = np.repeat(off[seed_ev], cnt) + local
        batch = SmearedBatch(sm.pt[jets], sm.eta[jets], sm.phi[jets], source, out_off, seed_ev,
                             sm.weight[passed])
        yield batch, float(sm.weight.sum()), int(sm.weight.size)


def met_after_smearing(met_pt, met_phi, seed_pt, seed_phi, smeared_pt, smeared_phi,
                       smeared_offsets) -> tuple[np.ndarray, np.ndarray]:
    """p_T^miss of smeared events: the seed's p_T^miss minus the change of the jets,
    MET_smeared = MET_seed - sum_i (pT_i,smeared - pT_i,seed) (vectors) (seed 004 sec. 2.6:
    leptons, photons and the unclustered energy stay as measured).

    ``met_pt``/``met_phi`` are per smeared event (the seed's); ``seed_pt``/``seed_phi`` are the
    original reco pT and phi of each smeared jet (flat, same layout as ``smeared_pt``).
    """
    off = np.asarray(smeared_offsets, dtype=np.int64)
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    dpt = np.asarray(smeared_pt, dtype=np.float64) - np.asarray(seed_pt, dtype=np.float64)
    n = off.size - 1
    dx = np.bincount(ev, dpt * np.cos(smeared_phi), n)
    dy = np.bincount(ev, dpt * np.sin(smeared_phi), n)
    # seed and smeared jets share their direction (eq. 2.1); seed_phi is for clarity
    del seed_phi
    mx = np.asarray(met_pt) * np.cos(met_phi) - dx
    my = np.asarray(met_pt) * np.sin(met_phi) - dy
    return np.hypot(mx, my), np.arctan2(my, mx)


def seed004_steps(o) -> list[tuple[str, np.ndarray]]:
    """Ordered (name, mask) steps of the seed-004 pre-selection (sec. 3.2.1) and baseline
    (sec. 3.2.2) on :class:`analysis.selection.EventObservables`: hard MHT > 120 GeV,
    >= 1 jet (pT > 30, |eta| < 2.4), no b-tagged jet, no electron or muon, HT > hard MHT, then
    hard MHT > 250 GeV. The closure region of issue 7."""
    return [
        ("pre_mht", o.mht > RS_PRESELECTION_MHT),
        ("pre_n_jets", o.n_jets >= RS_PRESELECTION_MIN_JETS),
        ("pre_btag_veto", o.n_btags == 0),
        ("pre_lepton_veto", (o.n_muons + o.n_electrons) == 0),
        ("pre_ht_over_mht", o.ht > o.mht),
        ("baseline_mht", o.mht > RS_BASELINE_MHT),
    ]


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


def response_summary(counts, edges, window: float = RS_FIG2_CORE_WINDOW) -> dict[str, float]:
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


#: number of b-jet categories of the priors (0, 1, >= 2), re-exported for the processors
N_BJET_CATEGORIES = RS_N_BJET_CATEGORIES
