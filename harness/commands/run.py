"""``harness run SCENARIO (--variant NAME | --factory SPEC)``: one scenario, one client factory.

Prints a per-turn table and the verdict. Exit 0 when every run's verdict is what the scenario
expects: of ``--variant``, its role in the scenario's plan (``variants:``, else the bundled
defaults; ``pass`` for one the scenario does not list); of ``--factory``, the role
``variants:`` gives it, else ``pass``, events or not (:meth:`Scenario.role_of`, as
``regress PATH --factory``). 1 otherwise, 2 on bad input, a factory that cannot be imported
included.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from harness.commands._common import (
    add_attribute_argument,
    add_max_duration_argument,
    add_report_dir_argument,
    add_root_argument,
    add_wide_argument,
    build_summary,
    check_output_paths,
    positive_int,
    refuse_bad_spec,
    refuse_untestable,
    scenario_file,
    start,
    write_json,
)
from harness.commands.registry import command
from harness.errors import UsageError
from harness.matrix import Cell, run_matrix
from harness.report import write_reports
from harness.report.text import (
    held_by_lines,
    run_heading,
    run_totals,
    run_verdict,
    terminal_width,
    turn_table,
)
from harness.runner import run_one
from harness.scenario import load_scenario
from harness.variants import BUNDLED, is_bundled


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", type=Path, help="scenario YAML file or bundled scenario name")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--variant", help="a bundled variant, e.g. keepalive-fixed")
    which.add_argument(
        "--factory", metavar="SPEC", help="package.module:function or path/to/file.py:function"
    )
    add_root_argument(parser, "--factory is resolved")
    parser.add_argument("--repeat", type=positive_int, default=1, help="runs (default: 1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    add_report_dir_argument(parser)
    add_max_duration_argument(parser)
    add_attribute_argument(parser)
    add_wide_argument(parser)


def main(ns: argparse.Namespace) -> int:
    scenario = load_scenario(scenario_file(ns.scenario), max_duration_s=ns.max_duration)
    variant = ns.variant or ns.factory
    if ns.variant is not None and not is_bundled(ns.variant):
        raise UsageError(
            f"unknown variant {ns.variant!r}; use one of: {', '.join(BUNDLED)}, "
            "or --factory SPEC for your own factory"
        )
    check_output_paths(ns.json, ns.report_dir)
    refuse_bad_spec(ns.factory, ns.root.resolve())
    expected = (
        scenario.role_of(ns.factory, named=True)
        if ns.factory
        else scenario.variant_expectations().get(variant, "pass")
    )
    begun = start("run")
    outcome = run_matrix(
        [Cell(scenario, variant, expected)],
        repeat=ns.repeat,
        jobs=1,
        root=ns.root.resolve(),
        runner=functools.partial(run_one, attribute=ns.attribute),
    )
    summary = build_summary("run", outcome, [scenario], begun)
    if not summary.interrupted:
        refuse_untestable(variant, summary)  # exit 2 with its one line, no report of nothing
    width = terminal_width(sys.stdout, wide=ns.wide)
    for entry in summary.entries:
        for i, (run, verdict) in enumerate(zip(entry.runs, entry.verdicts, strict=True), 1):
            print(run_heading(scenario.name, variant, run, i, len(entry.runs)))
            print(turn_table(run, width))
            print(run_totals(run, width))
            held = held_by_lines(run, width)
            if held:
                print(held)
            print(run_verdict(verdict, width) + "\n")
    if ns.json is not None:
        write_json(ns.json, summary)
    print(f"reports: {write_reports(summary, ns.report_dir)}")
    if summary.interrupted:
        return 130  # Ctrl-C, after the finished runs' reports are written
    return 0 if summary.ok else 1


COMMAND = command("run", add_arguments, main)
