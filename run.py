#!/usr/bin/env python
"""softtrack: columnar analysis of compressed higgsinos with a soft displaced track.

``python run.py`` runs the main job on the embedded default sample; ``python run.py
COMMAND --help`` explains each stage. See README.md.
"""

from __future__ import annotations

import argparse
import sys

from analysis.errors import SoftTrackError
from commands import COMMANDS, load


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=(
            "Search for compressed higgsinos with a soft displaced track: toy NanoAOD "
            "generation, coffea processors, corrections, models and limits. Without a "
            "command, runs the main job on the default sample (outputs/default/)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = load(name)
        if module is None:
            continue
        cmd = sub.add_parser(
            module.NAME, help=module.HELP, description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from commands import main_job

        entry = main_job.main
        args = main_job.default_args()
    else:
        entry = args._main
    try:
        return int(entry(args) or 0)
    except SoftTrackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
