"""Run a soft-track processor by name on the framework's one execution path."""

from __future__ import annotations

from processors.runner import RunOptions, make_processor, run

from . import ANALYSIS


def run_region(name: str, fileset: dict, opts: RunOptions, config=None, **kwargs) -> dict:
    """Run the soft-track processor ``name`` (signal, dy, single_lepton, rs, rs_templates)
    over ``fileset``; ``kwargs`` go to the processor (scorer, corrections, sr_edges, R&S
    inputs). Returns the output dict of :func:`processors.runner.run`."""
    cls = ANALYSIS.processor_class(name)
    return run(make_processor(cls, fileset, config, systematics=opts.systematics, **kwargs), fileset, opts)
