"""Samples as CMS makes them (docs/physics.md sec. 1): stitched generator-level slices and the
p_T^miss-enriched QCD are normalized exactly and do not bias what the selections keep.

The main job's plans (analysis.toymc.processes.MAIN_JOB_PLANS) are compared with inclusive
samples of the same processes (the process' filter only, unit weights) through the real
processors: the search baseline (signal), the single-lepton region, the cleaned Drell-Yan
region and, for QCD, the R&S seed selection (seed-004 pre-selection and baseline of the
simulated events, and the R&S prediction from the seeds). The yields must agree within
PULL_MAX standard deviations (both samples' MC statistics); the test states the precision
it reaches, so that it cannot pass by being imprecise. A negative control shows that it
would see a biased filter: the enriched QCD without its prescaled events (the events that
fail the enrichment cut dropped, normalized by the pass fraction) is far off in the R&S seed
selection.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.toymc.processes import MAIN_JOB_PLANS, PROCESSES, SamplePlan
from analysis.toymc.sample import generate_mc
from processors.runner import RunOptions

ERA = "2018"
SEED = 31
PULL_MAX = 3.0
#: events per sample: (inclusive, planned; the plan's events_factor multiplies the latter)
EVENTS = {"zjets_nunu": (6000, 1200), "wjets_lnu": (20000, 3000), "dy_mumu": (12000, 2000), "qcd": (40000, 2400)}
OPTS = RunOptions(executor="futures", workers=2, chunksize=20_000, status=False, systematics=False)


def test_slice_cross_sections_add_up_and_sampling_follows_the_spectrum():
    """Slice cross sections sum to the filtered one (closed form); pT drawn in a slice lies in it
    and follows the spectrum there (the fraction above a point inside the slice)."""
    rng = np.random.default_rng(1)
    for name, plan in MAIN_JOB_PLANS.items():
        spec = PROCESSES[name]
        total = sum(spec.xsec_slice_pb(lo, hi) for lo, hi in plan.ranges())
        assert total == pytest.approx(spec.xsec_pb, rel=1e-12)
        lo, hi = plan.ranges()[0]
        x = spec.spectrum.sample(200_000, rng, pt_range=(lo, hi))
        assert x.min() >= lo and x.max() < hi
        mid = 0.5 * (lo + hi)
        want = spec.xsec_slice_pb(mid, hi) / spec.xsec_slice_pb(lo, hi)
        assert np.mean(x > mid) == pytest.approx(want, abs=4 * np.sqrt(want * (1 - want) / x.size))


def test_planned_weights_normalize_each_slice_exactly():
    """genWeight of a stitched sample: each slice sums to sum_genweight x sigma_slice / sigma."""
    plan = SamplePlan((150.0, 250.0, float("inf")), (1.0, 3.0))
    branches, meta = generate_mc("zjets_nunu", ERA, 2000, SEED, plan=plan)
    w = branches["genWeight"].astype(np.float64)
    assert w.sum() == pytest.approx(meta["sum_genweight"], rel=1e-5)
    gen = meta["generation"]
    assert [s["events"] for s in gen["slices"]] == [500, 1500]
    assert json.loads(json.dumps(meta))["generation"]["slices"][1]["range"] == [250.0, None]
    ptz = branches["GenPart"]["pt"][branches["GenPart"].offsets[:-1]]  # GenPart[0] is the Z
    for s in gen["slices"]:
        lo, hi = s["range"][0], s["range"][1] or np.inf
        inside = (ptz >= lo) & (ptz < hi)
        assert inside.sum() == s["events"]
        assert w[inside].sum() / meta["sum_genweight"] == pytest.approx(s["xsec_pb"] / meta["xsec_pb"], rel=1e-5)
    with pytest.raises(ValueError, match="first slice edge"):
        generate_mc("zjets_nunu", ERA, 10, SEED, plan=SamplePlan((200.0, float("inf")), (1.0,)))


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Inclusive and planned samples of each process, 2018; and the negative control: the
    planned QCD's events of its enrichment tiers only (a plain filter, normalized by the
    fraction counted over every trial)."""
    from analysis.toymc.sample import take_events
    from analysis.toymc.writer import GENERATOR_VERSION, TREE, write_root

    tmp = tmp_path_factory.mktemp("samples")
    fileset = {}

    def write(name, branches, meta):
        path = tmp / f"{name}.root"
        write_root(path, branches)
        fileset[name] = {"files": {str(path): TREE}, "metadata": meta | {"generator_version": GENERATOR_VERSION}}

    for proc, (n_incl, n_plan) in EVENTS.items():
        write(f"{proc}_inclusive", *generate_mc(proc, ERA, n_incl, SEED))
        branches, meta = generate_mc(proc, ERA, n_plan, SEED + 1, plan=MAIN_JOB_PLANS[proc])
        write(f"{proc}_planned", branches, meta)
        if proc == "qcd":  # the events of the enrichment's tiers only, as if a plain filter
            passed = np.flatnonzero(MAIN_JOB_PLANS["qcd"].enrichment.tiers_of(branches)
                                    < len(MAIN_JOB_PLANS["qcd"].enrichment.tiers))
            write("qcd_filtered", take_events(branches, passed), dict(meta, n_events=int(passed.size)))
    return tmp, fileset


def _yield(output: dict, dataset: str, hist_name: str = "met") -> tuple[float, float]:
    h = output["histograms"][hist_name]
    sel = {"dataset": dataset}
    if "systematic" in h.axes.name:
        sel["systematic"] = "nominal"
    v = h[sel]
    return float(v.values(flow=True).sum()), float(np.sqrt(v.variances(flow=True).sum()))


def _compare(a: tuple[float, float], b: tuple[float, float], what: str, precision: float) -> float:
    """Pull of two yields; asserts agreement and the stated relative precision."""
    (ya, ua), (yb, ub) = a, b
    assert ya > 0 and yb > 0, what
    pull = (yb - ya) / np.hypot(ua, ub)
    rel = np.hypot(ua, ub) / ya
    print(f"{what}: inclusive {ya:.4g} +- {ua:.2g}, planned {yb:.4g} +- {ub:.2g}, pull {pull:+.2f}, "
          f"precision {rel:.1%}")
    assert rel < precision, f"{what}: the comparison is only {rel:.1%} precise"
    assert abs(pull) < PULL_MAX, what
    return pull


@pytest.mark.parametrize("processor,process,hist_name,precision", [
    ("signal", "zjets_nunu", "met", 0.07),
    ("signal", "wjets_lnu", "met", 0.13),
    ("signal", "qcd", "met", 0.25),
    ("single_lepton", "wjets_lnu", "met", 0.08),
    ("dy", "dy_mumu", "met", 0.07),
    ("dy", "dy_mumu", "ptz_gen", 0.06),
])
def test_selections_see_the_same_yields(samples, processor, process, hist_name, precision):
    """Baseline, single-lepton region and cleaned Drell-Yan: planned = inclusive yields (the
    dy processor's ptz_gen holds the pT(Z)-weight selection, p_T^miss > 200 GeV)."""
    from processors.softtrack.run import run_region

    _, fileset = samples
    fs = {k: v for k, v in fileset.items() if k in (f"{process}_inclusive", f"{process}_planned")}
    region = {"signal": "signal", "single_lepton": "single_lepton", "dy": "dy"}[processor]
    out = run_region(region, fs, OPTS, None, scorer=None)
    _compare(_yield(out, f"{process}_inclusive", hist_name), _yield(out, f"{process}_planned", hist_name),
             f"{processor} {process} {hist_name}", precision)


def test_rs_seed_selection_unbiased(samples, tmp_path):
    """QCD enriched in p_T^miss: the simulated events in the seed-004 pre-selection and
    baseline and the R&S prediction from its seeds (mostly the prescaled events: seeds have
    small p_T^miss) agree with the inclusive sample's; a plain filter (the negative control:
    the seeds below the cut missing) predicts a small fraction."""
    from processors.softtrack.run import build_rs_templates, predict_rs

    _, fileset = samples
    fs = {k: v for k, v in fileset.items() if k.startswith("qcd")}
    templates = tmp_path / "t.json.gz"
    build_rs_templates({"qcd_inclusive": fs["qcd_inclusive"]}, templates, OPTS)
    pred = predict_rs(fs, OPTS, rs_templates=str(templates), rs_n_smear=5, rs_n_bootstrap=10, rs_direct=True)
    h = pred["histograms"]["rs_mht"]

    def region_yield(ds, region="seed004"):
        v = h[{"dataset": ds, "region": region, "systematic": "nominal"}]
        return float(v.values(flow=True).sum()), float(np.sqrt(v.variances(flow=True).sum()))

    _compare(region_yield("qcd_inclusive"), region_yield("qcd_planned"), "R&S simulated seed004", 0.08)
    _compare(region_yield("qcd_inclusive_rs"), region_yield("qcd_planned_rs"), "R&S predicted seed004", 0.12)
    (ya, ua), (yc, uc) = region_yield("qcd_inclusive_rs"), region_yield("qcd_filtered_rs")
    pull = (yc - ya) / np.hypot(ua, uc)
    print(f"negative control (plain filter): {yc:.4g} +- {uc:.2g} vs {ya:.4g}, pull {pull:+.1f}")
    assert pull < -5.0
