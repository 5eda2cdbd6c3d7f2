"""Run a soft-track processor by name on the framework's one execution path, and the R&S
steps built on it: the templates from simulated QCD and the prediction (docs/physics.md sec. 8)."""

from __future__ import annotations

from pathlib import Path

from analysis import rs
from analysis.errors import ConfigError, InputFileError
from processors.runner import RunOptions, make_processor, run

from . import ANALYSIS


def run_region(name: str, fileset: dict, opts: RunOptions, config=None, **kwargs) -> dict:
    """Run the soft-track processor ``name`` (signal, dy, single_lepton, rs, rs_templates)
    over ``fileset``; ``kwargs`` go to the processor (scorer, corrections, sr_edges, R&S
    inputs). Returns the output dict of :func:`processors.runner.run`."""
    cls = ANALYSIS.processor_class(name)
    return run(make_processor(cls, fileset, config, systematics=opts.systematics, **kwargs), fileset, opts)


def replica_path(out: Path, k: int) -> Path:
    """File of the k-th bootstrap replica of the templates beside ``out`` (k >= 1)."""
    name = out.name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return out.with_name(f"{name[: -len(suffix)]}_replica{k}{suffix}")
    return out.with_name(f"{name}_replica{k}")


def build_rs_templates(fileset: dict, out: Path, opts: RunOptions, replicas: int = 0, config=None) -> dict:
    """Run the templates processor, write the correctionlib file (and, with ``replicas`` > 0,
    that many Poisson-bootstrap replicas of it, :func:`replica_path`, for the templates'
    statistical uncertainty); returns a summary dict."""
    from .rs import build_templates

    result = run_region("rs_templates", fileset, opts, config)
    if "rs_templates" not in result:
        raise InputFileError("no QCD events could be read for the R&S templates (all chunks skipped?)")
    templates, priors = build_templates(result["rs_templates"])
    out.parent.mkdir(parents=True, exist_ok=True)
    rs.write_correctionset(out, templates, priors)
    n_rep = result["rs_templates"]["response"].axes["replica"].size - 1
    if replicas > n_rep:
        raise ConfigError(f"{replicas} template replicas requested, the templates processor fills {n_rep}")
    replica_files = []
    for k in range(1, replicas + 1):
        path = replica_path(out, k)
        rs.write_correctionset(path, *build_templates(result["rs_templates"], replica=k))
        replica_files.append(str(path))
    cut = result["cutflow"]
    return {
        "file": str(out),
        "replica_files": replica_files,
        "template_lost_jets": int(sum(v["template_lost_jets"]["events"] for v in cut.values())),
        "events": int(sum(v["events"]["events"] for v in cut.values())),
        "template_pairs": int(sum(v["template_pairs"]["events"] for v in cut.values())),
        "empty_template_bins": int((templates.entries <= 0).sum()),
        # of those, the bins of |eta| bins without any jet (pdfs of the nearest populated one)
        "eta_borrowed_template_bins": templates.borrowed_bins()["abseta"],
        "prior_entries": [float(x) for x in priors.entries],
        "skipped": result["chunks"]["skipped"],
    }


def predict_rs(fileset: dict, opts: RunOptions, config=None, **kwargs) -> dict:
    """Run the R&S prediction processor over the seed datasets of ``fileset`` (``kwargs``:
    processors.softtrack.options.rs_kwargs); returns the merged output."""
    return run_region("rs", fileset, opts, config, **kwargs)
