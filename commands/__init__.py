"""Subcommands of ``run.py``: each module defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``main(args) -> int``. Register new ones in :data:`COMMANDS` (order = order in --help).

Commands are the wiring between the command line, files and the pure functions of
``analysis/``; they hold no physics of their own.
"""

from __future__ import annotations

import importlib

#: module names under commands/, in the order --help lists them
COMMANDS: tuple[str, ...] = (
    "generate",
    "process",
    "plots",
    "corrections",
    "limits",
    "train",
    "sr_edges",
    "abcd",
    "rs_templates",
    "rs_predict",
    "rs_closure",
    "compare",
)


def load(name: str):
    """Import the command module ``commands.<name>`` (None if that module does not exist)."""
    try:
        return importlib.import_module(f"commands.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"commands.{name}":
            return None
        raise
