"""Subcommands of ``run.py``: each module defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``main(args) -> int``. The framework's own are listed in :data:`COMMANDS` (order = order
in --help); each analysis adds its own through the registry (``Analysis.commands``).

Commands are the wiring between the command line, files and library functions; they hold no
physics of their own.
"""

from __future__ import annotations

import importlib

#: the framework's command modules, in the order --help lists them
COMMANDS: tuple[str, ...] = (
    "commands.generate",
    "commands.process",
    "commands.plots",
    "commands.limits",
    "commands.abcd",
    "commands.compare",
)


def load(module: str):
    """Import the command module ``module`` (None if that module does not exist)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            return None
        raise


def all_commands() -> list[tuple[str, str]]:
    """(module, analysis or "") of the framework's commands, then of each registered analysis."""
    from processors.registry import analyses

    out = [(m, "") for m in COMMANDS]
    seen = set(COMMANDS)
    for name, analysis in analyses().items():
        for m in analysis.commands:
            if m not in seen:
                out.append((m, name))
                seen.add(m)
    return out
