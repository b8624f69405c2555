"""``harness regress [PATHS...]``: every scenario across its variants, side by side.

Exit 0 when every verdict is as the scenario expects, 1 when one differs (a fixed variant is
unhealthy, or a buggy one is no longer caught), 2 on bad input, 130 on SIGINT (Ctrl-C) and
143 on SIGTERM, after killing the running workers and writing the reports of the runs that
finished; further signals are ignored until then (:mod:`harness.interrupts`).

Output: a line per finished cell, the comparison table (fitted to the terminal's width;
every column with ``--wide`` and off a terminal), a recap of the cells not as expected with
their reasons, and the report folder; on a TTY a live progress display as well
(:mod:`harness.progress`). ``--quiet`` prints only the report folder, ``--json`` only the
results (results.json's text).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.commands._common import (
    add_attribute_argument,
    add_max_duration_argument,
    add_output_arguments,
    add_report_dir_argument,
    add_root_argument,
    add_wide_argument,
    build_summary,
    check_output_paths,
    load_all,
    named_files,
    positive_int,
    refuse_bad_spec,
    refuse_untestable,
    start,
)
from harness.commands.registry import command
from harness.errors import UsageError
from harness.interrupts import handling
from harness.matrix import Cell, default_jobs, expected_seconds, plan, run_matrix, usable_cores
from harness.progress import Progress, choose_mode, make_progress
from harness.report import render_json, write_reports
from harness.report.text import regress_line, regress_opening, render_regress, terminal_width
from harness.runner import run_one
from harness.schema import Scenario
from harness.shard import Shard, parse_shard
from harness.verdict import RegressSummary
from harness.zygote import workers_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        default=[],
        metavar="PATH",
        help="scenario files, folders or bundled scenario names "
        "(default: every bundled scenario; `harness scenarios` lists them)",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        default=None,
        help="runs in parallel (default: enough to keep the cores busy while runs wait on "
        "their scenarios' gaps and delays, 2 to 4 per core; see README)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="runs per (scenario, variant); every one must be as expected",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this variant (repeatable)",
    )
    parser.add_argument(
        "--factory",
        metavar="SPEC",
        help="run every scenario against this factory (package.module:function or "
        "path/to/file.py:function) instead of the variants the scenarios list; it must pass "
        "unless a scenario's variants: gives it a role (with no PATH, the bundled event "
        "scenarios only observe it)",
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        metavar="I/N",
        help="run only shard I of N (a deterministic slice balanced by expected duration); "
        "combine the shards with 'harness report --merge'",
    )
    parser.add_argument(
        "--fresh-workers",
        action="store_true",
        help="start every run in a fresh interpreter instead of forking it from a zygote",
    )
    add_root_argument(parser, "factory specs are resolved")
    add_report_dir_argument(parser)
    add_max_duration_argument(parser)
    add_attribute_argument(parser)
    add_output_arguments(parser)
    add_wide_argument(parser)


def main(ns: argparse.Namespace) -> int:
    scenarios = load_all(ns.paths, ns.max_duration)
    check_output_paths(None, ns.report_dir)
    named = named_files(ns.paths)
    cells = select_cells(
        scenarios,
        ns.variant,
        ns.factory,
        ns.shard,
        named=lambda s: Path(s.path).resolve() in named,
    )
    refuse_bad_spec(ns.factory, ns.root.resolve())  # one line, not a BAD line per scenario
    if ns.jobs is None:
        ns.jobs = default_jobs(cells, usable_cores())
    begun = start("regress")
    progress = _start_progress(ns, cells, len(scenarios))
    # SIGINT or SIGTERM: the matrix kills the workers and returns the finished cells; any
    # further signal is ignored until their reports are written.
    root = ns.root.resolve()
    with handling() as caught:
        # One run alone costs less in a fresh interpreter than a zygote's start and a fork.
        fresh = ns.fresh_workers or len(cells) * ns.repeat < 2
        with progress, workers_for(root, fresh=fresh) as zygote:
            outcome = run_matrix(
                cells,
                repeat=ns.repeat,
                jobs=ns.jobs,
                root=root,
                on_start=lambda c: progress.started(_key(c.scenario.name, c.variant)),
                on_entry=lambda e: progress.finished(
                    _key(e.scenario, e.variant), regress_line(e), failed=not e.as_expected
                ),
                runner=functools.partial(run_one, zygote=zygote, attribute=ns.attribute),
            )
        summary = build_summary("regress", outcome, scenarios, begun, shard=ns.shard)
        if ns.factory and not summary.interrupted:
            refuse_untestable(ns.factory, summary)  # exit 2, and no report of nothing
        _print_result(ns, summary, write_reports(summary, ns.report_dir))
    if summary.interrupted:
        return caught.exit_code  # 130 / 143, after the finished runs' reports are written
    return 0 if summary.ok else 1


def select_cells(
    scenarios: Sequence[Scenario],
    only: Sequence[str],
    factory: str | None,
    shard: Shard | None,
    *,
    named: Callable[[Scenario], bool],
) -> list[Cell]:
    """The cells to run: the plan (``only`` some variants), or ``factory`` in every scenario
    with the role :meth:`Scenario.role_of` gives it (``named``: whether the user named the
    scenario's file, or its bundled name, on the command line; a folder's files are not
    named one by one); then this shard's part of them."""
    known = {name for s in scenarios for name in s.variant_expectations()}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise UsageError(
            f"--variant {unknown[0]!r} runs in none of these scenarios; use one of: "
            + ", ".join(sorted(known))
        )
    if factory and only:
        raise UsageError("--factory and --variant exclude each other; pass one of them")
    cells = (
        [Cell(s, factory, s.role_of(factory, named=named(s))) for s in scenarios]
        if factory
        else plan(scenarios, only)
    )
    if shard is not None:
        cells = shard.pick(cells, [expected_seconds(c.scenario) for c in cells])
    return cells


def _print_result(ns: argparse.Namespace, summary: RegressSummary, run_dir: Path) -> None:
    """The results as ``--json`` or ``--quiet`` ask, else the table and the report folder."""
    if ns.json:
        print(render_json(summary), end="")
    elif ns.quiet:
        print(run_dir)
    else:
        width = terminal_width(sys.stdout, wide=ns.wide)
        print(f"\n{render_regress(summary, width)}\n\nreports: {run_dir}")


def _start_progress(ns: argparse.Namespace, cells: Sequence[Cell], scenarios: int) -> Progress:
    """The progress display for this run, with its plan and the opening line said."""
    mode = choose_mode(sys.stdout, quiet=ns.quiet or ns.json, env=os.environ)
    progress = make_progress(mode, sys.stdout)
    progress.plan((_key(c.scenario.name, c.variant), expected_seconds(c.scenario)) for c in cells)
    shard = str(ns.shard) if ns.shard else ""
    progress.say(regress_opening(len(cells), ns.repeat, scenarios, ns.jobs, shard))
    return progress


def _key(scenario: str, variant: str) -> str:
    return f"{scenario} / {variant}"


COMMAND = command("regress", add_arguments, main)
