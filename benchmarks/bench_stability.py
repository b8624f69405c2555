"""Verdict and series stability under load: every bundled cell N times, both cores busy.

    python benchmarks/bench_stability.py [--runs 20] [--busy 2] [--jobs N] [--fresh-workers]
        [PATHS...]

Starts ``--busy`` busy-loop processes (default: one per core) that saturate the machine,
runs every (scenario, variant) cell of the bundled scenarios (or PATHS) ``--runs`` times,
stops the busy loops, and prints per cell how many runs gave the modal verdict and how many
the modal CLOSE_WAIT series (turn series, then the three post-session samples: live after GC,
after close, after GC; ``0x100`` is a hundred zeros), then each run whose verdict is not the
modal one, with its reasons and errors. ``--jobs`` defaults to what ``regress`` would pick for
these cells on this machine (:func:`harness.matrix.default_jobs`). The target is
N/N everywhere: a verdict that depends on the machine's load would make a bisect name the
wrong commit. Figures only; no thresholds.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.commands._common import load_all, positive_int
from harness.matrix import Cell, default_jobs, plan, run_matrix, usable_cores
from harness.result import RunResult
from harness.runner import run_one
from harness.verdict import RegressEntry
from harness.zygote import workers_for

BUSY_LOOP = "while True: pass"


@contextmanager
def busy(count: int) -> Iterator[None]:
    """``count`` processes spinning on a core each, killed on the way out."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def series(run: RunResult) -> tuple[int, ...]:
    """The CLOSE_WAIT counts a verdict can read: per turn, then live/close/gc."""
    post = (run.close_wait_live_after_gc, run.close_wait_after_close, run.close_wait_after_gc)
    return (*run.close_wait_series, *post)


def compact(values: tuple[int, ...]) -> str:
    """``0x100 1 2``: runs of one value written once with their length."""
    parts: list[str] = []
    for value, run in itertools.groupby(values):
        n = len(list(run))
        parts.append(f"{value}x{n}" if n > 2 else " ".join([str(value)] * n))
    return " ".join(parts)


def modal(values: Sequence[object]) -> tuple[object, int]:
    value, count = Counter(values).most_common(1)[0]
    return value, count


def row(entry: RegressEntry) -> tuple[str, ...]:
    verdict, verdict_n = modal([v.outcome for v in entry.verdicts])
    shapes = [series(r) for r in entry.runs]
    shape, shape_n = modal(shapes)
    others = Counter(compact(s) for s in shapes if s != shape)
    statuses = Counter(r.status for r in entry.runs)
    n = len(entry.runs)
    return (
        entry.scenario,
        entry.variant,
        f"{verdict} {verdict_n}/{n}",
        f"{shape_n}/{n}",
        compact(shape),  # type: ignore[arg-type]
        ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        "; ".join(f"{s} (x{n})" for s, n in others.most_common()),
    )


def print_odd_runs(entry: RegressEntry) -> None:
    """Each run whose verdict is not the cell's modal one: why, and what it raised."""
    verdict, _ = modal([v.outcome for v in entry.verdicts])
    for n, (run, v) in enumerate(zip(entry.runs, entry.verdicts, strict=True), 1):
        if v.outcome != verdict:
            errors = ", ".join(f"{k} x{c}" for k, c in run.errors_by_type.items()) or "none"
            slowest = max((r.latency_ms for r in run.records), default=0.0)
            print(
                f"  odd: {entry.scenario} / {entry.variant} run {n}: {v.outcome} "
                f"({'; '.join(v.reasons) or 'healthy'}); errors {errors}; "
                f"slowest call {slowest:.0f} ms; {run.status} {run.detail}".rstrip()
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["scenarios"])
    parser.add_argument("--runs", type=positive_int, default=20, help="runs per cell (20)")
    parser.add_argument(
        "--busy", type=int, default=os.cpu_count() or 2, help="busy-loop processes (cores)"
    )
    parser.add_argument(
        "--jobs", type=positive_int, help="cells in parallel (default: regress's default)"
    )
    parser.add_argument(
        "--fresh-workers",
        action="store_true",
        help="a fresh interpreter per run (default: forked from a zygote, as regress does)",
    )
    ns = parser.parse_args(argv)
    scenarios = load_all(ns.paths)
    cells: list[Cell] = plan(scenarios)
    jobs = ns.jobs or default_jobs(cells, usable_cores())
    t0 = time.monotonic()
    with busy(ns.busy), workers_for(Path.cwd(), fresh=ns.fresh_workers) as zygote:
        outcome = run_matrix(
            cells,
            repeat=ns.runs,
            jobs=jobs,
            root=Path.cwd(),
            runner=functools.partial(run_one, zygote=zygote),
        )
    wall = time.monotonic() - t0
    how = "fresh interpreters" if zygote is None else "zygote"
    print(
        f"{len(cells)} cells x {ns.runs} runs, {ns.busy} busy loops, {jobs} job(s), "
        f"{how}, wall {wall:.0f} s"
    )
    header = ("scenario", "variant", "verdict", "series", "modal series", "statuses", "others")
    rows = [row(e) for e in outcome.entries]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for line in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    stable = sum(
        1 for r in rows if r[2].endswith(f" {ns.runs}/{ns.runs}") and r[3].startswith(f"{ns.runs}/")
    )
    for entry in outcome.entries:
        print_odd_runs(entry)
    print(f"cells stable in verdict and series: {stable}/{len(rows)}")
    return 130 if outcome.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
