"""``harness report RESULTS [--out DIR]``: re-render every format from a saved run.

``RESULTS`` is a results.json, its run folder (``reports/<run-id>``), ``reports/latest`` or a
reports root (its latest run); the same holds for each input of a merge.
``harness report --merge A.json B.json ... [--out DIR]`` combines the results of regress
shards and SDK lines into one report (rules in :mod:`harness.report.merge`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.registry import command
from harness.errors import UsageError
from harness.report import load_summary, write_reports
from harness.report.layout import LATEST, latest_run, new_run_id
from harness.report.merge import merge
from harness.report.text import recap, terminal_width

__all__ = ["COMMAND", "results_file"]

RESULTS = "results.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        type=Path,
        nargs="+",
        metavar="RESULTS.json",
        help="a results.json written by regress, run or check, or its run folder "
        "(reports/<run-id>, reports/latest); several with --merge",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="combine the results of shards and SDK lines into one report; "
        "exit 1 when a merged cell is not as expected",
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

    A re-render does not append to ``$GITHUB_STEP_SUMMARY`` (the run already did) and exits
    0; a merge is a new report, so it appends and exits 0 when every cell is as expected,
    after the recap of the cells that are not (on stderr).
    """
    if not ns.merge:
        if len(ns.results) > 1:
            raise UsageError(f"{len(ns.results)} results files given; pass --merge to combine")
        print(write_reports(load_summary(results_file(ns.results[0])), ns.out, env={}))
        return 0
    inputs = [(str(path), load_summary(results_file(path))) for path in ns.results]
    summary = merge(inputs, new_run_id=new_run_id)
    run_dir = write_reports(summary, ns.out)
    # the recap on stderr: stdout stays the one line scripts read, the folder
    for line in recap(summary, terminal_width(sys.stderr, wide=False)):
        print(line, file=sys.stderr)
    print(run_dir)
    return 0 if summary.ok else 1


def results_file(path: Path) -> Path:
    """The results.json ``path`` names: a run folder's (``reports/<run-id>``), the run a
    ``latest`` link or file names, a reports root's latest run's, or ``path`` itself."""
    if path.name == LATEST and path.is_file():  # where symlinks fail, `latest` names the run
        path = path.parent
    if not path.is_dir():
        return path  # load_summary says what is wrong with it
    if (path / RESULTS).is_file():
        return path / RESULTS
    run_id = latest_run(path)
    if run_id is not None and (path / run_id / RESULTS).is_file():
        return path / run_id / RESULTS
    raise UsageError(
        f"{path}: a folder with no {RESULTS} and no `{LATEST}` run; pass a run folder "
        f"(reports/<run-id>), reports/{LATEST} or a {RESULTS}"
    )


COMMAND = command("report", add_arguments, main)
