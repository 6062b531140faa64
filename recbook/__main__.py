"""Command line: ``python -m recbook run [NOTEBOOK ...] [-p NAME=VALUE ...] [--out DIR]``, and
``python -m recbook doctor`` (is this machine ready for the workshop?).

Runs the notebooks headless (see :mod:`recbook.book.runner`), prints one row per notebook and exits
with 1 when any notebook failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recbook", description="Run the recbook notebooks headless and collect results."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "doctor",
        help="is this machine ready for the workshop? (about a minute; one verdict line)",
        description="Check Python, disk, memory, every library, the bundled text model and a "
        "small run through the book; print READY or what to fix (exit 1).",
    )
    run = commands.add_parser(
        "run",
        help="execute notebooks in a fresh kernel",
        description=(
            "Execute notebooks (default: every notebooks/NN_*.ipynb, in order) in a fresh "
            "kernel, inject parameters into the cell tagged 'parameters', write the executed "
            "copies and summary.json to --out, and print a table of the results. A notebook "
            "reports its device with recbook.record('device', str(dev))."
        ),
    )
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help=".ipynb (or its .py pair)")
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="parameters",
        help="inject NAME=VALUE; VALUE is read as a Python literal, else kept as a string",
    )
    run.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/<UTC timestamp>)"
    )
    run.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed per cell (default none)"
    )
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    run.add_argument(
        "--store",
        action="store_true",
        help="after a successful run at the defaults, write each executed notebook over its "
        "source (the outputs committed with it; what `make nb` does)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m recbook`` and the ``recbook`` script; returns the exit code."""
    from recbook.book import runner

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from recbook.book import doctor

        return doctor.main()
    if args.command != "run":
        parser.print_help()
        return 2
    try:
        params = runner.parse_parameters(args.parameters)
        if args.store and params:
            raise runner.RunnerError("--store runs notebooks at their defaults: drop the -p")
        results, out_dir = runner.run(
            args.notebooks,
            params,
            args.out,
            progress=not args.no_progress,
            timeout=args.timeout,
        )
    except runner.RunnerError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the cause's text held
        print(f"recbook run: error: {message}", file=sys.stderr)
        return 2
    table = runner.summary_table(results)
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(table.to_string(index=False))
    print(f"\nexecuted notebooks and summary.json in {out_dir}")
    failed = [r for r in results if r.status != "ok"]
    if args.store:  # each notebook that finished is stored; a failed one keeps its old outputs
        for r in results:
            try:
                print(f"stored {runner.store(r)}" if r.status == "ok" else f"not stored: {r.path}")
            except runner.RunnerError as exc:
                print(f"recbook run: error: {' '.join(str(exc).split())}", file=sys.stderr)
                return 2
    for r in failed:
        print(f"\n{r.notebook} failed ({r.output}):\n{r.error}", file=sys.stderr)
    if failed:
        print(f"FAILED: {', '.join(r.notebook for r in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
