"""``harness scenarios``: the bundled scenarios, by the names every command accepts.

One block per scenario: its name and the first sentence of its description, then the
variants it judges grouped by role (``pass``: must stay healthy; ``fail``: must be caught;
``observe``: run and reported, never judged). Exit 0; 2 when the bundled scenarios cannot be
found or one is invalid.
"""

from __future__ import annotations

import argparse
import math

from harness import bundled
from harness.commands.registry import command
from harness.scenario import Scenario, load_scenario

__all__ = ["COMMAND", "describe", "first_sentence"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments: the list is short enough to read whole."""


def main(ns: argparse.Namespace) -> int:
    folder = bundled.directory()
    # Listing is not running: the duration limit guards runs, so it does not apply here.
    scenarios = [
        load_scenario(bundled.resolve(name), max_duration_s=math.inf) for name in bundled.names()
    ]
    print(f"{len(scenarios)} bundled scenarios (in {folder}); pass a name wherever a file goes")
    for scenario in scenarios:
        print(describe(scenario))
    return 0


def describe(scenario: Scenario) -> str:
    """``name: first sentence``, then one line per role (in order of first use) naming the
    variants that have it: ``  fail: keepalive-mutating, shared-http-client``."""
    by_role: dict[str, list[str]] = {}
    for variant, role in scenario.variant_expectations().items():
        by_role.setdefault(role, []).append(variant)
    lines = [f"  {role}: {', '.join(names)}" for role, names in by_role.items()]
    return "\n".join([f"{scenario.name}: {first_sentence(scenario.description)}", *lines])


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop followed by a space (all of it when none)."""
    head, sep, _ = " ".join(text.split()).partition(". ")
    return head + "." if sep else head


COMMAND = command("scenarios", add_arguments, main)
