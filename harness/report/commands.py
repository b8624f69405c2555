"""``harness report RESULTS.json [--out DIR]``: re-render every format from a saved run."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.report import load_summary, write_reports

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        type=Path,
        metavar="RESULTS.json",
        help="a results.json written by regress, run or check",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="reports root; files go to DIR/<run-id>/ (default: reports)",
    )


def main(ns: argparse.Namespace) -> int:
    """Load the results, write all formats, print the run directory.

    Unlike a run, a re-render does not append to ``$GITHUB_STEP_SUMMARY``.
    """
    summary = load_summary(ns.results)
    # A re-render is not a new run: the CI step summary already holds this run's summary.
    print(write_reports(summary, ns.out, env={}))
    return 0
