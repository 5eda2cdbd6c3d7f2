"""CLs upper limits on the signal strength for each signal point (docs/physics.md sec. 9).

Asymptotic CLs with the q~_mu test statistic; observed and expected (+-1, +-2 sigma) 95%
CL upper limits on mu; one HistFactory workspace per signal point, written to
``<OUT stem>_workspaces/<signal>.json`` beside OUT (``pyhf cls`` runs on each as it is).

Input, one of:

--yields FILE.json      {"regions": [...], "observed": [...],
                         "backgrounds": {NAME: {"yields", "stat", "norm_unc"}},
                         "signals": {NAME: {"yields", "stat"}},
                         "lumi_unc": 0.016, "signal_unc": 0.10}
                        (norm_unc, signal_unc relative, log-normal; stat absolute)
--histograms FILE.coffea  coffea.util.save output: {"histograms": {"sr": hist.Hist}} with
                        axes dataset/process (StrCat), systematic (StrCat: nominal,
                        <name>Up, <name>Down) and sr (Integer 0..11); signals are the
                        categories "<prefix>m<M>_dm<DM>", e.g. signal_m115_dm0p27;
                        with --corrections, the sideband scale factors and residual shape
                        of a corrections file scale the simulated background of the
                        signal regions first (corrections/softtrack/README.md). A processor output
                        with dataset metadata has its datasets summed over eras (data
                        into --data-name, or left out with --blind); systematic entries
                        other than nominal and Up/Down pairs (the processors' diagnostic
                        "nocorr") are left out; simulated bins below zero are set to zero
                        and signal regions without background left out, each with a message
                        (analysis.stats.from_histograms.workspaces_from_output, which
                        the main job uses too: --blind --full-lumi --systematics
                        nominal,jesUp,jesDown with its corrections file gives its limits)

Output OUT.json: {"signals": {NAME: {"observed": mu, "expected": [m2, m1, median, p1, p2],
"cls_obs_mu1", "cls_exp_mu1", "mu_hat", "poi_upper_bound", "poi_bound_widened", "workspace",
"m", "dm", ...}}, "workspace": DIR, ...}. When the best-fit mu or a limit reaches the POI
upper bound, the bound is widened and the limits computed again (docs/physics.md sec. 9,
"POI range"), with a message; the workspace written carries the bound used. Nothing is
written before every limit is computed, and each file is written atomically (a temporary
file renamed into place), so an interrupted run leaves the previous outputs as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from analysis.errors import ConfigError, InputFileError, YieldsError
from analysis.io import write_atomic
from analysis.stats.defaults import (
    STATS_CLS_LEVEL,
    STATS_DATA_NAME,
    STATS_MEASUREMENT,
    STATS_SIGNAL_PREFIX,
    STATS_TEST_STAT,
)

NAME = "limits"
HELP = "CLs upper limits on mu per signal point (asymptotic, qtilde) and the exclusion contour"
SR_HISTOGRAM = "sr"
PLOT_STEM = "exclusion"
MIN_CONTOUR_POINTS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--yields", type=Path, metavar="FILE.json", help="standalone yields file")
    src.add_argument("--histograms", type=Path, metavar="FILE.coffea",
                     help="processor output (coffea.util.save) with the 'sr' histogram")
    parser.add_argument("--out", type=Path, default=Path("limits.json"), metavar="OUT.json",
                        help="output JSON (default: %(default)s); workspaces go beside it")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="parallel processes over signal points (default: %(default)s)")
    parser.add_argument("--cls-target", type=float, default=STATS_CLS_LEVEL,
                        help="CLs level of the upper limit (default: %(default)s, i.e. 95%% CL)")
    parser.add_argument("--plot", type=Path, metavar="DIR",
                        help=f"draw the exclusion contour into DIR/{PLOT_STEM}.png/.pdf")
    parser.add_argument("--signal-prefix", default=STATS_SIGNAL_PREFIX,
                        help="name prefix of the signal categories (default: %(default)s)")
    parser.add_argument("--histogram", default=SR_HISTOGRAM,
                        help="key of the signal-region histogram (default: %(default)s)")
    parser.add_argument("--data-name", default=STATS_DATA_NAME,
                        help="data category of the histogram (default: %(default)s)")
    parser.add_argument("--blind", action="store_true",
                        help="histograms: use the background-only Asimov counts as data")
    parser.add_argument("--corrections", type=Path, metavar="FILE.json.gz",
                        help="histograms: apply the file's sideband scale factors and residual shape to the "
                             "simulated background of the signal regions (with their uncertainties as shape "
                             "systematics), for the SR edges recorded in the output")
    parser.add_argument("--full-lumi", action="store_true",
                        help="histograms: scale simulation from the luminosity the output was normalized to "
                             "(its provenance) to the full Run-2 luminosity of each era, as the main job does")
    parser.add_argument("--systematics", metavar="NAME,...",
                        help="histograms: the systematic entries to use (default: every nominal and Up/Down "
                             "pair; the main job uses nominal,jesUp,jesDown); pairs added by --corrections "
                             "are always used")
    parser.add_argument("--process-map", nargs="+", default=None, metavar="CATEGORY=BACKGROUND",
                        help="histograms: map categories to fit backgrounds (several may share "
                             "one); default: every non-signal, non-data category is a background")


def _load_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputFileError(f"yields file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise YieldsError(f"yields file {path} is not valid JSON: {err}") from None


def _process_map(items: list[str] | None) -> dict[str, str] | None:
    if items is None:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--process-map entry {item!r} is not CATEGORY=BACKGROUND")
        out[key] = value
    return out


def _systematics(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [x.strip() for x in text.split(",") if x.strip()]
    if "nominal" not in names:
        raise ConfigError(f"--systematics must include nominal, got {text!r}")
    return names


def specs_from_histograms(args: argparse.Namespace) -> dict[str, dict]:
    """One workspace spec per signal category of the processor output file
    (analysis.stats.from_histograms.workspaces_from_output, the main job's path too)."""
    from coffea.util import load

    from analysis.stats.from_histograms import workspaces_from_output

    if not args.histograms.is_file():
        raise InputFileError(f"histogram file {args.histograms} does not exist")
    try:
        output = load(args.histograms)
    except Exception as err:  # corrupt file: any unpickling/decompression error
        raise InputFileError(f"cannot read {args.histograms}: {err}") from None
    hists = output.get("histograms") if isinstance(output, dict) else None
    if not isinstance(hists, dict) or args.histogram not in hists:
        raise InputFileError(
            f"{args.histograms} has no histograms[{args.histogram!r}]; expected a dict with key "
            "'histograms' holding the processor's histograms"
        )
    correct = None
    if args.corrections is not None:
        from corrections.softtrack.apply import SoftTrackCorrections
        from processors.softtrack.stats import sr_corrector

        correct = sr_corrector(SoftTrackCorrections(args.corrections))
    target_lumi = None
    if args.full_lumi:
        from analysis.constants import LUMI_FB

        target_lumi = LUMI_FB
    result = workspaces_from_output(output, histogram=args.histogram, correct=correct, blind=args.blind,
                                    data_name=args.data_name, signal_prefix=args.signal_prefix,
                                    process_map=_process_map(args.process_map),
                                    systematics=_systematics(args.systematics), target_lumi_fb=target_lumi)
    for note in result.correction_notes:
        print(f"background correction: {note}")
    for message in result.messages:
        print(message)
    return result.specs


def _check_writable(directory: Path, what: str) -> None:
    """Create ``directory`` and make sure a file can be written there, before any fit runs."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / ".write_test", "").unlink()
    except OSError as err:
        raise ConfigError(f"cannot write {what} into {directory}: {err.strerror or err}; choose another path") from None


def main(args: argparse.Namespace) -> int:
    from analysis.stats.contour import limits_on_grid, plot_exclusion
    from analysis.stats.limits import upper_limits_grid
    from analysis.stats.workspace import (
        SIGNAL_SAMPLE,
        parse_signal_point,
        vanishing_variations,
        with_poi_upper_bound,
        workspaces_from_yields,
    )

    if not 0.0 < args.cls_target < 1.0:
        raise ConfigError(f"--cls-target must be in (0, 1), got {args.cls_target}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    start = time.perf_counter()
    if args.corrections is not None and args.yields is not None:
        raise ConfigError("--corrections applies to --histograms, not to a yields file")
    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a directory: give a file name, e.g. {args.out / 'limits.json'}")
    _check_writable(args.out.parent, "--out")
    specs = (workspaces_from_yields(_load_json(args.yields)) if args.yields is not None
             else specs_from_histograms(args))
    ws_dir = args.out.parent / f"{args.out.stem}_workspaces"
    for name, spec in specs.items():
        empty = [v.split(": ", 1)[1] for v in vanishing_variations(spec) if v.startswith(f"{SIGNAL_SAMPLE}: ")]
        if empty:
            print(f"warning: {name}: the variation {', '.join(empty)} empties the signal: the likelihood has a "
                  "second minimum there and the limits may miss it or not exist (compare with pyhf cls)")
    results = upper_limits_grid(specs, level=args.cls_target, workers=args.workers)
    signals: dict[str, dict] = {}
    for name, res in results.items():
        spec = specs[name]
        if res.poi_bound_widened:
            print(f"{name}: the POI upper bound {res.poi_upper_bound_initial:.4g} was reached (best-fit mu = "
                  f"{res.mu_hat:.4g}, largest limit {max(res.observed, *res.expected):.4g}): widened to "
                  f"{res.poi_upper_bound:.4g} (docs/physics.md sec. 9, POI range)")
            spec = with_poi_upper_bound(spec, res.poi_upper_bound, STATS_MEASUREMENT)
        entry = res.to_json()
        entry["workspace"] = str(write_atomic(ws_dir / f"{name}.json", json.dumps(spec, indent=1)))
        try:
            entry["m"], entry["dm"] = parse_signal_point(name, args.signal_prefix)
        except ConfigError:
            pass  # free-form signal names in a yields file: no grid point
        signals[name] = entry
    out = {
        "signals": signals,
        "workspace": str(ws_dir),
        "cls_target": args.cls_target,
        "test_stat": STATS_TEST_STAT,
        "calculator": "asymptotics",
        "seconds": time.perf_counter() - start,
    }
    write_atomic(args.out, json.dumps(out, indent=1))
    for name, entry in signals.items():
        verdict = "excluded" if entry["observed"] < 1.0 else "not excluded"
        print(f"{name:32s} observed mu_up = {entry['observed']:8.4g}  expected = "
              f"{entry['expected'][2]:8.4g} [{entry['expected'][1]:.3g}, {entry['expected'][3]:.3g}]  {verdict}")
    if args.plot is not None:
        on_grid = {k: v for k, v in signals.items() if "m" in v}
        if len(on_grid) < MIN_CONTOUR_POINTS:
            raise ConfigError(
                f"--plot needs >= {MIN_CONTOUR_POINTS} signals named {args.signal_prefix}m<M>_dm<DM>, "
                f"got {len(on_grid)}"
            )
        points, observed, expected = limits_on_grid(on_grid, lambda n: (on_grid[n]["m"], on_grid[n]["dm"]))
        for path in plot_exclusion(points, observed, expected, args.plot / PLOT_STEM):
            print(f"wrote {path}")
    print(f"wrote {args.out} ({len(signals)} signal points, {out['seconds']:.1f} s)")
    return 0
