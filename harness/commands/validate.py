"""``harness validate FILE...``: check scenario files without running them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands._common import add_max_duration_argument, discover
from harness.commands.registry import command
from harness.errors import ScenarioError, UsageError
from harness.scenario import load_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="FILE", help="scenario files, folders or bundled names"
    )
    add_max_duration_argument(parser)


def main(ns: argparse.Namespace) -> int:
    """Print one line per file; exit 2 if any file is invalid or any path is missing (every
    path and file is checked)."""
    bad = 0
    for path in _each_file(ns.paths):
        if isinstance(path, UsageError):
            print(f"harness validate: error: {path}", file=sys.stderr)
            bad += 1
            continue
        try:
            scenario = load_scenario(path, max_duration_s=ns.max_duration)
        except ScenarioError as exc:
            print(f"harness validate: error: {exc}", file=sys.stderr)
            bad += 1
            continue
        print(f"{path}: ok ({scenario.name}, {len(scenario.variant_expectations())} variants)")
    return 2 if bad else 0


def _each_file(paths: list[str]) -> list[Path | UsageError]:
    """The scenario files under each path, or the error that path gives (it is missing, or a
    folder with no scenario files), in the order given."""
    found: list[Path | UsageError] = []
    for raw in paths:
        try:
            found.extend(discover([raw]))
        except UsageError as exc:
            found.append(exc)
    return found


COMMAND = command("validate", add_arguments, main)
