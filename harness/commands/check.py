"""``harness check``: the oracle ``git bisect run`` calls directly.

Exit 0 healthy ("good"/"old"), 1 regression ("bad"/"new"), 125 untestable (the factory cannot
be imported or every run died before its first call). Never 128 or more, which would abort
``git bisect run``: a harness failure inside a step is reported as 125, never as "bad".

Bad input (a missing or invalid scenario, bad flags, an unwritable ``--json``) also exits 125
with one line on stderr, not the usual 2: ``git bisect run`` would read 2 as "bad" and name a
wrong commit with confidence, while 125 only skips.

With ``--repeat N`` the policy decides: ``majority`` (default) calls the commit bad when more
than half of the testable runs are unhealthy; ``any`` when one is. Untestable runs are left
out of the count.
"""

from __future__ import annotations

import argparse
import functools
import sys
import traceback
from pathlib import Path

from harness.commands._common import (
    add_attribute_argument,
    add_max_duration_argument,
    add_root_argument,
    add_wide_argument,
    build_summary,
    check_output_paths,
    positive_int,
    scenario_file,
    start,
    write_json,
)
from harness.commands.registry import command
from harness.errors import UsageError
from harness.matrix import Cell, run_matrix
from harness.report.text import check_conclusion, check_run_line, held_by_lines, terminal_width
from harness.runner import run_one
from harness.scenario import Scenario, load_scenario
from harness.verdict import RegressEntry
from harness.zygote import workers_for

HEALTHY, REGRESSION, UNTESTABLE = 0, 1, 125


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        type=Path,
        required=True,
        help="scenario YAML file or bundled scenario name",
    )
    parser.add_argument(
        "--factory",
        required=True,
        metavar="SPEC",
        help="bundled variant, package.module:function or path/to/file.py:function",
    )
    add_root_argument(parser, "the factory is resolved: the checkout under test")
    parser.add_argument("--repeat", type=positive_int, default=1, help="runs (default: 1)")
    parser.add_argument(
        "--policy",
        choices=("majority", "any"),
        default="majority",
        help="how repeated runs decide (default: majority)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    add_max_duration_argument(parser)
    add_attribute_argument(parser)
    add_wide_argument(parser)


def main(ns: argparse.Namespace) -> int:
    # bad input, an over-long scenario included: COMMAND.usage_exit via the CLI
    scenario = load_scenario(scenario_file(ns.scenario), max_duration_s=ns.max_duration)
    check_output_paths(ns.json, None)
    try:
        return _check(ns, scenario)
    except UsageError:
        raise
    except Exception:  # a harness failure must not mark a commit bad
        traceback.print_exc()
        print("harness check: untestable: the harness failed (see above)", file=sys.stderr)
        return UNTESTABLE


def _check(ns: argparse.Namespace, scenario: Scenario) -> int:
    begun, root = start("check"), ns.root.resolve()
    # Repeated runs fork from one zygote (one SDK import instead of one per run). It lives
    # as long as this check, so no two commits' code ever meet in it.
    with workers_for(root, fresh=ns.repeat == 1) as zygote:
        # Health decides, whatever role the scenario's variants: gives the factory: the
        # oracle's question is whether this commit is healthy (events or not).
        outcome = run_matrix(
            [Cell(scenario, ns.factory, "pass")],
            repeat=ns.repeat,
            jobs=1,
            root=root,
            runner=functools.partial(run_one, zygote=zygote, attribute=ns.attribute),
        )
    if outcome.interrupted:
        raise KeyboardInterrupt
    entry = outcome.entries[0]
    code = decide(entry, ns.policy)
    if ns.json is not None:
        write_json(ns.json, build_summary("check", outcome, [scenario], begun))
    word = {HEALTHY: "healthy", REGRESSION: "regression", UNTESTABLE: "untestable"}[code]
    width = terminal_width(sys.stdout, wide=ns.wide)
    for run, verdict in zip(entry.runs, entry.verdicts, strict=True):
        print(check_run_line(run, verdict, width))
        held = held_by_lines(run, width)  # --attribute: who holds the leaked sockets
        if held:
            print(held)
    print(check_conclusion(word, ns.policy, len(entry.runs)))
    return code


def decide(entry: RegressEntry, policy: str) -> int:
    """Map repeated runs to 0 (healthy), 1 (regression) or 125 (untestable)."""
    testable = [
        v for r, v in zip(entry.runs, entry.verdicts, strict=True) if r.status != "untestable"
    ]
    if not testable:
        return UNTESTABLE
    unhealthy = sum(1 for v in testable if not v.healthy)
    bad = unhealthy > 0 if policy == "any" else unhealthy * 2 > len(testable)
    return REGRESSION if bad else HEALTHY


# Bad input must skip the commit, not mark it bad (see above).
COMMAND = command("check", add_arguments, main, usage_exit=UNTESTABLE)
