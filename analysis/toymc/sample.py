"""Assemble toy events: pileup, hard process, detector, soft component (docs/physics.md sec. 1, 10).

:func:`generate_mc` makes a simulated sample of one process; :func:`generate_stream` a
pseudo-data stream (trigger-selected mixture of the background processes made with the
pseudo-data detector of :mod:`.truth`, at an equivalent luminosity chosen so that about
the requested number of events pass). Output is a dict branch -> array for flat branches
and collection name -> :class:`~.jagged.Jagged` for jagged ones, in the names of
:mod:`analysis.contract`. Randomness: one ``numpy.random.Generator`` per (seed, process,
era, signal point, stream), so every sample is reproducible on its own.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .. import contract as dc
from .detector import jets, leptons, missing_pt, noise_flags, photons, taus, triggers
from .hard import generate_hard
from .jagged import Jagged
from .processes import (
    DATA_STREAMS,
    PROCESSES,
    STREAM_SKIMS,
    SamplePlan,
    signal_xsec_filtered_pb,
)
from .soft import primary_particles, sample_primary, tracks_and_pf, vertices
from .truth import DATA_DETECTOR, RUN_RANGES, SIM_DETECTOR, Detector

NEGATIVE_WEIGHT_FRACTION = {"zjets_nunu": 0.01, "wjets_lnu": 0.01, "dy_mumu": 0.01}
EVENTS_PER_LUMIBLOCK = 1000
CANDIDATE_BLOCK = 200_000
PILOT_EVENTS = 4000


def make_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator seeded from (seed, key...) with a stable hash (independent of PYTHONHASHSEED)."""
    words = [int(seed)] + [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass
class Stage:
    """Events after the hard process and the hard-object detector response (no soft part)."""

    hard: object
    true_pv: tuple
    n_true: np.ndarray
    n_pu: np.ndarray
    reco: dict  # flat branches and Jagged collections


def _hard_stage(process, n, era, det: Detector, rng, runs=None, **kw) -> Stage:
    """Hard process and the detector response of the hard objects (``kw``: generate_hard's)."""
    n_true = det.pileup.sample_true(era, n, rng, det.model.pileup_scale)
    n_pu = rng.poisson(n_true)
    pv = sample_primary(n, det, rng)
    shift = det.model.ptz_power_shift if process == "dy_mumu" else 0.0
    hard = generate_hard(process, n, pv, rng, power_shift=shift, **kw)
    hem = np.zeros(n, bool)
    if runs is not None and det.model.hem_affected_run is not None and era == "2018":
        hem = runs >= det.model.hem_affected_run
    genjet, jet, jet_sum = jets(hard, det, hem, rng)
    muon, electron, lep_vis = leptons(hard, det, rng)
    flags, failed = noise_flags(n, era, det, rng)
    met = missing_pt(hard, det, jet_sum, lep_vis, failed, rng)
    reco = {"GenJet": genjet, "Jet": jet, "Muon": muon, "Electron": electron, "Tau": taus(hard, det, rng),
            "Photon": photons(n, rng), **met, **flags, **triggers(met, muon, jet, rng)}
    return Stage(hard, pv, n_true, n_pu, reco)


def _select(stage: Stage, mask: np.ndarray) -> Stage:
    def sel(v):
        return v.select(mask) if isinstance(v, Jagged) else v[mask]

    hard = stage.hard
    hard = type(hard)(hard.genpart.select(mask), hard.genjets.select(mask), hard.taus_h.select(mask))
    return Stage(hard, tuple(v[mask] for v in stage.true_pv), stage.n_true[mask], stage.n_pu[mask],
                 {k: sel(v) for k, v in stage.reco.items()})


def _soft_stage(stage: Stage, det: Detector, is_data: bool, rng) -> dict:
    vtx = vertices(stage.true_pv, stage.n_pu, det, rng)
    genpart = primary_particles(stage.hard, stage.true_pv, det, rng, with_hard=True)
    track, sv, pf = tracks_and_pf(genpart, vtx, stage.hard, det, is_data, rng)
    out = dict(stage.reco)
    out.update(vtx.pv)
    out["OtherPV"] = vtx.other
    out["SV"] = sv
    out["Track"] = track
    out["PFCand"] = pf
    if is_data:
        for key in ("GenJet", "GenMET_pt", "GenMET_phi"):
            out.pop(key)
        jet = out["Jet"]
        out["Jet"] = Jagged(jet.counts, {k: v for k, v in jet.fields.items() if k not in ("genJetIdx", "hadronFlavour")})
        for name in ("Muon", "Electron"):
            col = out[name]
            out[name] = Jagged(col.counts, {k: v for k, v in col.fields.items() if k != "genPartIdx"})
    else:
        gp = {k: genpart[k] for k in genpart.fields}
        gp["genPartIdxMother"] = gp.pop("mother").astype(np.int32)
        gp["pdgId"] = gp["pdgId"].astype(np.int32)
        gp["status"] = gp["status"].astype(np.int32)
        out["GenPart"] = Jagged(genpart.counts, gp)
        out["Pileup_nTrueInt"] = stage.n_true
        out["Pileup_nPU"] = stage.n_pu.astype(np.int32)
    return out


def _event_ids(n: int, run: np.ndarray | int) -> dict[str, np.ndarray]:
    idx = np.arange(n, dtype=np.int64)
    return {
        "run": np.broadcast_to(np.asarray(run, np.uint32), (n,)).copy(),
        "luminosityBlock": (idx // EVENTS_PER_LUMIBLOCK + 1).astype(np.uint32),
        "event": (idx + 1).astype(np.uint64),
    }


def generate_mc(process: str, era: str, n: int, seed: int, m_chargino: float | None = None,
                dm: float | None = None, plan: SamplePlan | None = None) -> tuple[dict, dict]:
    """A simulated sample; returns (branches, metadata).

    Without ``plan``: ``n`` events of the process' filtered phase space, genWeight +-1. With a
    :class:`~.processes.SamplePlan` (not for the signal): its slices stitched into one sample
    and its enrichment, about ``n`` events in all (:func:`_planned_stage`)."""
    if process not in PROCESSES and process != "signal":
        raise ValueError(f"unknown process {process!r}")
    if plan is not None and process == "signal":
        raise ValueError("the signal is generated in its filter only (no SamplePlan)")
    key = (process, era) if process != "signal" else (process, era, m_chargino, dm)
    rng = make_rng(seed, *key)
    neg = NEGATIVE_WEIGHT_FRACTION.get(process, 0.0)
    generation = None
    if plan is None:
        kw = {"m_chargino": m_chargino, "dm": dm} if process == "signal" else {}
        stage = _hard_stage(process, n, era, SIM_DETECTOR, rng, **kw)
        out = _soft_stage(stage, SIM_DETECTOR, False, rng)
        out["genWeight"] = np.where(rng.random(n) < neg, -1.0, 1.0).astype(np.float32)
        sum_genweight = float(out["genWeight"].sum(dtype=np.float64))
    else:
        stage, weight, sum_genweight, generation = _planned_stage(process, era, n, plan, neg, rng)
        out = _soft_stage(stage, SIM_DETECTOR, False, rng)
        out["genWeight"] = weight.astype(np.float32)
        # chunks and partial reads see every slice: the events in random order
        order = rng.permutation(weight.size)
        out = take_events(out, order)
    n_kept = int(out["genWeight"].size)
    out.update(_event_ids(n_kept, 1))
    xsec = signal_xsec_filtered_pb(m_chargino) if process == "signal" else PROCESSES[process].xsec_pb
    meta = {"process": process, "era": era, "is_data": False, "xsec_pb": float(xsec),
            "sum_genweight": float(sum_genweight), "n_events": n_kept, "seed": int(seed)}
    if process == "signal":
        meta |= {"m_chargino": float(m_chargino), "dm_chargino": float(dm)}
    if generation is not None:
        meta["filter"] = plan.describe(process)
        meta["generation"] = generation
    return out, meta


#: trials per block of an enriched sample
TRIAL_BLOCK = 50_000


def _planned_stage(process: str, era: str, n: int, plan: SamplePlan, neg: float, rng):
    """Hard stage of a planned sample: per slice, trials until its events are there.

    Returns the stage of the kept events, their genWeight (float64), the dataset's
    ``sum_genweight`` (the signed number of trials T) and the generation record (per slice:
    range, cross section, events, trials, and the fraction of the trials in each enrichment
    tier). genWeight = sign x w_e x (sigma_s / sigma) x (T / T_s), w_e the enrichment
    weight (the prescale of the event's tier): every slice adds up to its
    cross section in expectation over its trials, exactly so without enrichment.
    """
    spec = PROCESSES[process]
    if plan.slices[0] != spec.spectrum.cut:
        raise ValueError(f"{process}: the first slice edge {plan.slices[0]:g} must be the process' filter "
                         f"{spec.spectrum.cut:g} ({spec.filter})")
    sigma = spec.xsec_pb
    enrich = plan.enrichment
    stages, weights, records = [], [], []
    for (lo, hi), n_s in zip(plan.ranges(), plan.events(n), strict=True):
        kept_w, signed_trials, trials, kept = [], 0.0, 0, 0
        tier_counts = np.zeros(len(enrich.tiers) + 1 if enrich is not None else 0, np.int64)
        while kept < n_s:
            if enrich is None:
                m = n_s - kept
            elif trials == 0:  # a first block of n_s trials measures the kept fraction
                m = min(TRIAL_BLOCK, max(n_s, 1000))
            else:  # then blocks sized to what is missing (5% more)
                need = (n_s - kept) * trials / max(kept, 1) * 1.05
                m = int(min(TRIAL_BLOCK, max(need, 1000)))
            st = _hard_stage(process, m, era, SIM_DETECTOR, rng, pt_range=(lo, hi))
            sign = np.where(rng.random(m) < neg, -1.0, 1.0)
            if enrich is None:
                keep, w = np.ones(m, bool), sign
            else:
                tier = enrich.tiers_of(st.reco)
                tier_counts += np.bincount(tier, minlength=tier_counts.size)
                prescale = enrich.prescale_of_tier[tier]
                keep = rng.random(m) * prescale < 1.0
                w = sign * prescale
                st = _select(st, keep)
            trials += m
            signed_trials += float(sign.sum())
            stages.append(st)
            kept_w.append(w[keep])
            kept += int(keep.sum())
        xs = spec.xsec_slice_pb(lo, hi)
        records.append({"range": [float(lo), float(hi) if np.isfinite(hi) else None], "xsec_pb": xs, "events": kept, "trials": trials,
                        "signed_trials": signed_trials,
                        **({"tier_fractions": (tier_counts / trials).tolist()} if enrich is not None else {})})
        weights.append((np.concatenate(kept_w), xs, signed_trials))
    total_trials = sum(r["signed_trials"] for r in records)
    weight = np.concatenate([w * (xs / sigma) * (total_trials / t) for w, xs, t in weights])
    generation = {"plan": plan.as_dict(), "slices": records, "xsec_pb": sigma,
                  "normalization": "genWeight = sign x enrichment weight x (sigma_slice / xsec_pb) x "
                                   "(sum_genweight / signed trials of the slice)"}
    return _concat_stages(stages), weight, float(total_trials), generation


def _concat_stages(stages: list[Stage]) -> Stage:
    if len(stages) == 1:
        return stages[0]
    h0 = stages[0].hard
    hard = type(h0)(*(_stack_jagged([getattr(s.hard, f) for s in stages]) for f in ("genpart", "genjets", "taus_h")))
    true_pv = tuple(np.concatenate([s.true_pv[i] for s in stages]) for i in range(len(stages[0].true_pv)))
    reco = stack_events([s.reco for s in stages])
    return Stage(hard, true_pv, np.concatenate([s.n_true for s in stages]),
                 np.concatenate([s.n_pu for s in stages]), reco)


def _stream_pass(stream: str, stage: Stage, det: Detector, rng, skim: bool = False) -> np.ndarray:
    trigger, _ = DATA_STREAMS[stream]
    p_keep = det.model.met_ratio(stage.reco["MET_pt"])
    keep = stage.reco[trigger] & (rng.random(p_keep.size) < p_keep)
    if skim and stream in STREAM_SKIMS:
        keep &= np.asarray(STREAM_SKIMS[stream][1](stage.reco), bool)
    return keep


def generate_stream(stream: str, era: str, n_target: int, seed: int, lumi_fb: float | None = None,
                    skim: bool = False) -> tuple[dict, dict]:
    """A pseudo-data stream; returns (branches, metadata).

    Every process of the stream is generated in its filtered phase space (the same as its
    simulation: ProcessSpec's filter), as many candidates as ``lumi_fb`` times its cross
    section (Poisson), then triggered. ``lumi_fb`` None: the luminosity at which about
    ``n_target`` events pass (a pilot run). ``skim``: keep only the events of the stream's
    reconstructed-level skim (processes.STREAM_SKIMS), as CMS skims do; the metadata says so.
    """
    _, processes = DATA_STREAMS[stream]
    det = DATA_DETECTOR
    lo, hi = RUN_RANGES[era]
    if lumi_fb is None:
        pilot = make_rng(seed, stream, era, "pilot")
        rate = 0.0
        for p in processes:
            runs = pilot.integers(lo, hi + 1, PILOT_EVENTS)
            st = _hard_stage(p, PILOT_EVENTS, era, det, pilot, runs=runs)
            rate += PROCESSES[p].xsec_pb * _stream_pass(stream, st, det, pilot, skim).mean()
        lumi_pb = n_target / max(rate, 1e-12)
    else:
        if not lumi_fb > 0:
            raise ValueError(f"lumi_fb must be positive, got {lumi_fb!r}")
        lumi_pb = 1000.0 * float(lumi_fb)
    pieces = []
    for p in processes:
        rng = make_rng(seed, stream, era, p)
        n_cand = int(rng.poisson(lumi_pb * PROCESSES[p].xsec_pb))
        for start in range(0, n_cand, CANDIDATE_BLOCK):
            m = min(CANDIDATE_BLOCK, n_cand - start)
            runs = rng.integers(lo, hi + 1, m)
            st = _hard_stage(p, m, era, det, rng, runs=runs)
            keep = _stream_pass(stream, st, det, rng, skim)
            if keep.any():
                kept = _select(st, keep)
                branches = _soft_stage(kept, det, True, rng)
                branches["run"] = runs[keep].astype(np.uint32)
                pieces.append(branches)
    if not pieces:
        raise ValueError(f"{stream} {era}: no event at {lumi_pb / 1000.0:g} fb^-1: raise the luminosity")
    out = stack_events(pieces)
    n = out["run"].size
    order = np.argsort(out["run"], kind="stable")
    out = take_events(out, order)
    ids = _event_ids(n, out["run"])
    out.update(ids)
    meta = {"process": stream, "era": era, "is_data": True, "lumi_fb": lumi_pb / 1000.0,
            "n_events": int(n), "seed": int(seed), "processes": list(processes)}
    if skim and stream in STREAM_SKIMS:
        meta["filter"] = f"skim: {STREAM_SKIMS[stream][0]}"
    return out, meta


def _stack_jagged(parts: list[Jagged]) -> Jagged:
    """Append the events of collections with the same fields."""
    return Jagged(np.concatenate([p.counts for p in parts]),
                  {f: np.concatenate([p[f] for p in parts]) for f in parts[0].fields})


def stack_events(pieces: list[dict]) -> dict:
    """Concatenate samples event-wise (same branches in every piece)."""
    out = {}
    for key, first in pieces[0].items():
        if isinstance(first, Jagged):
            out[key] = Jagged(np.concatenate([p[key].counts for p in pieces]),
                              {f: np.concatenate([p[key][f] for p in pieces]) for f in first.fields})
        else:
            out[key] = np.concatenate([p[key] for p in pieces])
    return out


def take_events(branches: dict, order: np.ndarray) -> dict:
    """Reorder events (a permutation)."""
    out = {}
    for key, v in branches.items():
        if isinstance(v, Jagged):
            idx = _gather(v.offsets, order)
            out[key] = Jagged(v.counts[order], {f: a[idx] for f, a in v.fields.items()})
        else:
            out[key] = v[order]
    return out


def _gather(offsets: np.ndarray, order: np.ndarray) -> np.ndarray:
    counts = (offsets[1:] - offsets[:-1])[order]
    starts = offsets[:-1][order]
    total = counts.sum()
    new_off = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.repeat(starts - new_off, counts) + np.arange(total)


__all__ = ["generate_mc", "generate_stream", "make_rng", "dc"]
