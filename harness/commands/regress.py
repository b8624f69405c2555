"""``harness regress [PATHS...]``: every scenario across its variants, side by side.

Exit 0 when every verdict is as the scenario expects, 1 when one differs (a fixed variant is
unhealthy, or a buggy one is no longer caught), 2 on bad input, 130 on SIGINT (Ctrl-C) and
143 on SIGTERM, after killing the running workers and writing the reports of the runs that
finished; further signals are ignored until then (:mod:`harness.interrupts`).
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Sequence

from harness.commands._common import (
    add_max_duration_argument,
    add_report_dir_argument,
    add_root_argument,
    build_summary,
    check_output_paths,
    format_table,
    load_all,
    monotonic,
    positive_int,
    utc_now,
)
from harness.errors import UsageError
from harness.interrupts import handling
from harness.matrix import plan, run_matrix
from harness.report import write_reports
from harness.runner import run_one
from harness.verdict import RegressEntry, RegressSummary
from harness.zygote import workers_for

DEFAULT_JOBS = max(2, min(4, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        default=["scenarios"],
        metavar="PATH",
        help="scenario files or folders (default: scenarios)",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        default=DEFAULT_JOBS,
        help=f"runs in parallel (default: {DEFAULT_JOBS})",
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
        "--fresh-workers",
        action="store_true",
        help="start every run in a fresh interpreter instead of forking it from a zygote",
    )
    add_root_argument(parser, "factory specs are resolved")
    add_report_dir_argument(parser)
    add_max_duration_argument(parser)


def main(ns: argparse.Namespace) -> int:
    scenarios = load_all(ns.paths, ns.max_duration)
    check_output_paths(None, ns.report_dir)
    known = {name for s in scenarios for name in s.variant_expectations()}
    unknown = [name for name in ns.variant if name not in known]
    if unknown:
        raise UsageError(
            f"--variant {unknown[0]!r} runs in none of these scenarios; use one of: "
            + ", ".join(sorted(known))
        )
    cells = plan(scenarios, ns.variant)
    started, t0 = utc_now(), monotonic()
    print(
        f"regress: {len(cells)} runs x {ns.repeat} from {len(scenarios)} scenarios, {ns.jobs} jobs",
        flush=True,
    )
    # SIGINT or SIGTERM: the matrix kills the workers and returns the finished cells; any
    # further signal is ignored until their reports are written.
    root = ns.root.resolve()
    with handling() as caught:
        with workers_for(root, fresh=ns.fresh_workers) as zygote:
            outcome = run_matrix(
                cells,
                repeat=ns.repeat,
                jobs=ns.jobs,
                root=root,
                on_entry=_progress,
                runner=functools.partial(run_one, zygote=zygote),
            )
        summary = build_summary("regress", outcome, scenarios, started, t0)
        print()
        print(render(summary))
        run_dir = write_reports(summary, ns.report_dir)
        print(f"\nreports: {run_dir}")
    if summary.interrupted:
        return caught.exit_code  # 130 / 143, after the finished runs' reports are written
    return 0 if summary.ok else 1


def _progress(entry: RegressEntry) -> None:
    mark = "ok " if entry.as_expected else "BAD"
    v = entry.verdict
    print(
        f"  {mark} {entry.scenario} / {entry.variant}: {v.outcome} (expected {v.expected})",
        flush=True,
    )


def render(summary: RegressSummary) -> str:
    """The comparison table: one block per scenario, variants side by side."""
    blocks = []
    for scenario, entries in summary.by_scenario().items():
        blocks.append(f"{scenario}")
        blocks.append(_indent(format_table(HEADER, [row(e) for e in entries])))
        for e in entries:
            if not e.as_expected:
                blocks.append(
                    f"  ! {e.variant}: expected {e.verdict.expected}, got "
                    f"{e.verdict.outcome}: {'; '.join(e.verdict.reasons) or 'healthy'}"
                )
    bad = [e for e in summary.entries if not e.as_expected]
    head = (
        f"{len(summary.entries)} runs, {len(summary.entries) - len(bad)} as expected, "
        f"{len(bad)} not, in {summary.wall_s:.1f} s"
    )
    if summary.interrupted:
        head += " (INTERRUPTED: partial results)"
    return "\n".join([*blocks, "", head])


HEADER: Sequence[str] = (
    "variant",
    "expect",
    "outcome",
    "errors",
    "retries",
    "sdk retries",
    "cw peak",
    "cw growth",
    "cw live gc",
    "cw after gc",
    "conns",
    "p95 ms",
    "wall s",
)


def row(entry: RegressEntry) -> list[object]:
    r, v = entry.result, entry.verdict
    mark = "" if entry.as_expected else " !"
    return [
        entry.variant,
        v.expected,
        v.outcome + mark,
        r.errors,
        r.retries,
        r.sdk_retries,
        r.close_wait_peak,
        r.close_wait_growth,
        r.close_wait_live_after_gc,
        r.close_wait_after_gc,
        r.connections,
        f"{r.latency_p95_ms:.0f}",
        f"{r.wall_s:.2f}",
    ]


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
