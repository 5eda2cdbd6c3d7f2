#!/usr/bin/env python
"""A columnar framework for LHC searches with missing transverse momentum.

``python run.py`` runs the main job (the soft-track analysis) on the embedded default
sample; ``python run.py COMMAND --help`` explains each stage. See README.md and
ARCHITECTURE.md.
"""

from __future__ import annotations

import argparse
import sys

from analysis.errors import SoftTrackError

#: the analysis whose main job ``python run.py`` runs without a command
DEFAULT_ANALYSIS = "softtrack"


def build_parser() -> argparse.ArgumentParser:
    from commands import all_commands, load
    from processors.registry import analyses

    listing = "\n".join(f"  {a.name:12s} {a.description}" for a in analyses().values())
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=(
            "Columnar analysis of LHC searches with missing transverse momentum: toy NanoAOD "
            "generation, coffea processors, corrections, models and limits. Without a command, "
            f"runs the main job of the {DEFAULT_ANALYSIS} analysis on the default sample "
            "(outputs/default/)."
        ),
        epilog=f"analyses (process --analysis NAME):\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="without a command: the main job on a smaller sample (a smoke test of about 2 minutes)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, owner in all_commands():
        module = load(module_name)
        if module is None:
            continue
        cmd = sub.add_parser(
            module.NAME, help=module.HELP + (f" [{owner}]" if owner else ""), description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            from processors.registry import get

            entry, default_args = get(DEFAULT_ANALYSIS).main_job_entry()
            quick = args.quick
            args = default_args()
            args.quick = quick
        else:
            entry = args._main
        return int(entry(args) or 0)
    except SoftTrackError as err:
        for line in getattr(err, "details", ()):
            print(line, file=sys.stderr)
        message = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
