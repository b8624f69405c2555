"""``harness compare BASE.json NEW.json``: what changed per cell; exit 1 if NEW is worse.

The comparison itself is :func:`harness.report.compare.compare` (pure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.registry import command
from harness.report.compare import compare, render_comparison
from harness.report.jsonfile import load_summary

__all__ = ["COMMAND"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, metavar="BASE.json", help="the reference results")
    parser.add_argument("new", type=Path, metavar="NEW.json", help="the results to judge")


def main(ns: argparse.Namespace) -> int:
    """Print the comparison; 1 when NEW is worse on any verdict, else 0."""
    result = compare(load_summary(ns.base), load_summary(ns.new))
    print(render_comparison(result), end="")
    return 1 if result.worse else 0


COMMAND = command("compare", add_arguments, main)
