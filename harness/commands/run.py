"""``harness run SCENARIO (--variant NAME | --factory SPEC)``: one scenario, one client factory.

Prints a per-turn table and the verdict. Exit 0 when every run's verdict is what the scenario
expects of this variant (its role in ``variants:``; ``pass`` for a variant or factory the
scenario does not name), 1 otherwise, 2 on bad input, a factory that cannot be imported
included.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from harness.commands._common import (
    add_max_duration_argument,
    add_report_dir_argument,
    add_root_argument,
    build_summary,
    check_output_paths,
    format_table,
    monotonic,
    positive_int,
    refuse_untestable,
    scenario_file,
    utc_now,
    write_json,
)
from harness.commands.base import Command
from harness.errors import UsageError
from harness.matrix import Cell, run_matrix
from harness.report import write_reports
from harness.result import RunResult, turn_label
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


def main(ns: argparse.Namespace) -> int:
    scenario = load_scenario(scenario_file(ns.scenario), max_duration_s=ns.max_duration)
    variant = ns.variant or ns.factory
    if ns.variant is not None and not is_bundled(ns.variant):
        raise UsageError(
            f"unknown variant {ns.variant!r}; use one of: {', '.join(BUNDLED)}, "
            "or --factory SPEC for your own factory"
        )
    check_output_paths(ns.json, ns.report_dir)
    expected = scenario.variant_expectations().get(variant, "pass")
    started, t0 = utc_now(), monotonic()
    outcome = run_matrix(
        [Cell(scenario, variant, expected)], repeat=ns.repeat, jobs=1, root=ns.root.resolve()
    )
    summary = build_summary("run", outcome, [scenario], started, t0)
    for entry in summary.entries:
        for i, (run, verdict) in enumerate(zip(entry.runs, entry.verdicts, strict=True), 1):
            label = f" (run {i} of {len(entry.runs)})" if len(entry.runs) > 1 else ""
            kind = f", {run.client_kind} client" if run.client_kind else ""
            print(f"{scenario.name} / {variant}{label}: {run.status}{kind}, {run.wall_s:.2f} s")
            print(turn_table(run))
            print(totals(run))
            reasons = "; ".join(verdict.reasons) or "within every threshold"
            print(f"verdict: {verdict.outcome.upper()} ({reasons}); expected {verdict.expected}\n")
    if ns.json is not None:
        write_json(ns.json, summary)
    print(f"reports: {write_reports(summary, ns.report_dir)}")
    if summary.interrupted:
        return 130  # Ctrl-C, after the finished runs' reports are written
    refuse_untestable(variant, summary)
    return 0 if summary.ok else 1


def turn_table(run: RunResult) -> str:
    """One row per turn: calls, errors, and the sockets sampled after the turn."""
    calls = Counter(r.turn for r in run.records)
    errors = Counter(r.turn for r in run.records if not r.ok)
    first_error = {}
    for r in run.records:
        if not r.ok and r.turn not in first_error:
            first_error[r.turn] = r.error_type or "?"
    rows = []
    turn_samples = [s for s in run.samples if s.label.startswith("turn ")]
    for s in turn_samples:
        rows.append(
            [
                turn_label(s),  # marks the turn where a lifecycle event ran
                calls[s.turn],
                errors[s.turn],
                s.close_wait,
                s.established,
                s.fds,
                first_error.get(s.turn, ""),
            ]
        )
    header = ("turn", "calls", "errors", "close_wait", "established", "fds", "first error")
    return format_table(header, rows)


def totals(run: RunResult) -> str:
    by_type = ", ".join(f"{k} x{v}" for k, v in run.errors_by_type.items()) or "none"
    return (
        f"calls {run.calls}, errors {run.errors} ({by_type}), retries {run.retries} "
        f"(SDK retries {run.sdk_retries}), connections {run.connections}, CLOSE_WAIT peak "
        f"{run.close_wait_peak} growth {run.close_wait_growth} live after gc "
        f"{run.close_wait_live_after_gc} after close {run.close_wait_after_close} "
        f"after gc {run.close_wait_after_gc}, p95 {run.latency_p95_ms:.0f} ms"
        + (f"\n{run.status}: {run.detail}" if run.detail else "")
    )


COMMAND = Command("run", "run one scenario against one variant or factory", add_arguments, main)
