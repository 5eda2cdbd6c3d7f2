"""Derive the corrections from processor outputs and write them as correctionlib JSON.

Reads the outputs of ``run.py process`` (coffea.util.save files): the cleaned Drell-Yan
region (``--dy``: pT(Z) weights, track-class scale factors, residual max-logit shape) and
the signal region (``--signal``: p_T^miss weights, max-logit sideband scale factors);
pileup weights come from the toy generator's true pileup profiles of simulation and
pseudo-data (analysis.toymc.pileup.truth_profiles), which this command passes in. Writes one gzipped CorrectionSet for
all eras, OUT/softtrack_corrections.json.gz, that passes ``correction validate``
(docs/physics.md sec. 5, 6; corrections/softtrack/README.md).

Examples:
  python run.py corrections --dy out/dy.coffea --signal out/signal.coffea --out corrections/
  correction summary corrections/softtrack_corrections.json.gz
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.errors import ConfigError, InputFileError

NAME = "corrections"
HELP = "derive the corrections (pileup, pT(Z), track classes, p_T^miss, sidebands) as correctionlib JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dy", type=Path, default=None, help="output of `run.py process --processor dy` (.coffea)")
    p.add_argument("--signal", type=Path, default=None, help="output of `run.py process --processor signal` (.coffea)")
    p.add_argument("--out", type=Path, default=Path("corrections"),
                   help="output directory or .json.gz path (default corrections/)")
    p.add_argument("--quiet", action="store_true", help="no summary output")


def load_output(path: Path | None, what: str) -> dict | None:
    """Load a processor output saved with coffea.util.save (None if no path given)."""
    if path is None:
        return None
    from coffea.util import load

    if not path.is_file():
        raise InputFileError(f"{what} output {path} not found: make it with `run.py process --processor {what}`")
    try:
        out = load(str(path))
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputFileError(f"cannot read {what} output {path}: {type(err).__name__}: {err}") from None
    if not isinstance(out, dict) or "histograms" not in out or "datasets" not in out:
        raise InputFileError(f"{path} is not a processor output (no 'histograms'/'datasets')")
    return out


def truth_pileup():
    """The pileup-weight input of the toy samples: the generator's true profiles of every era
    (corrections.softtrack.derive.PileupProfiles of analysis.toymc.pileup.truth_profiles)."""
    from analysis.softtrack.config import ERAS
    from analysis.toymc.pileup import truth_profiles
    from corrections.softtrack.derive import PileupProfiles

    return PileupProfiles(**truth_profiles(ERAS))


def main(args) -> int:
    from rich.console import Console

    from corrections.softtrack.build import build_corrections, write_correction_set

    if args.dy is None and args.signal is None:
        raise ConfigError("give --dy and/or --signal (processor outputs)")
    console = Console(stderr=True, quiet=args.quiet)
    result = build_corrections(load_output(args.dy, "dy"), load_output(args.signal, "signal"),
                               pileup_profiles=truth_pileup())
    path = write_correction_set(result.cset, args.out)
    for era, f in result.track_fits.items():
        console.print(f"track_class_sf {era}: pv {f.sf['pv']:.4f} +- {f.unc['pv']:.4f}, spurious "
                      f"{f.sf['spurious']:.4f} +- {f.unc['spurious']:.4f} (pileup norm {f.pileup_norm:.4f})")
    for era, f in result.met_fits.items():
        console.print(f"met_weight {era}: slope {f.p1:.3e} +- {f.err_p1:.1e} /GeV, value at pivot {f.pivot:.0f} GeV "
                      f"{f.p0:.4f} +- {f.err_p0:.4f}, chi2/ndf {f.chi2:.1f}/{f.ndf}")
    for era, f in result.ptz_fits.items():
        console.print(f"ptz_weight {era}: {len(f.weights)} bins, weights {min(f.weights):.3f}-{max(f.weights):.3f}")
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {path} ({path.stat().st_size} bytes): {', '.join(c.name for c in result.cset.corrections)}")
    return 0
