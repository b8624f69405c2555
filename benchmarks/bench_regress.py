"""Regress figures: wall time, per-run overhead, verdict stability, turns needed to catch.

    python benchmarks/bench_regress.py [--repeat 10] [--jobs N] [--skip-turns] [--matrix-only]
        [PATHS...]
    python benchmarks/bench_regress.py --fresh-vs-zygote [--jobs 2] [PATHS...]

Prints, for the bundled matrix (or PATHS):
- the wall time of one whole matrix run (at ``--jobs``, default: what ``regress`` picks), its
  longest run, and each run's overhead beyond the scenario's own time (what it plans to spend
  asleep: :func:`harness.planned.planned_duration_s`): process start, imports, server start,
  calls, sampling, measured around the whole run (``run_one``), workers forked from a zygote;
  ``--matrix-only`` stops there;
- with ``--fresh-vs-zygote`` only: the same matrix with a fresh interpreter per run, with a
  zygote, and fresh again, one after the other: each one's overhead per run, whether every
  cell's verdict is identical, and which counts differ (between the fresh runs too: the
  scenario's own noise; only with the zygote: the zygote's doing);
- verdict stability: each (scenario, variant) run ``--repeat`` times, and how many runs gave
  a verdict other than the first one;
- for every cell the scenario expects to catch (`fail`), the fewest turns that catch it.
Figures only; no pass/fail thresholds (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from harness.commands._common import load_all
from harness.matrix import (
    Cell,
    MatrixOutcome,
    RunOne,
    default_jobs,
    plan,
    run_cell,
    run_matrix,
    usable_cores,
)
from harness.planned import planned_duration_s
from harness.result import COUNT_FIELDS, RunResult
from harness.runner import run_one
from harness.scenario import Scenario, load_scenario
from harness.zygote import Zygote, workers_for


def own_time_s(scenario: Scenario) -> float:
    """What the scenario spends on purpose: gaps, latency, chunk delays, stalls, retry-after."""
    return planned_duration_s(scenario)


def timed_runner(zygote: Zygote | None, spent: dict[tuple[str, str], float]) -> RunOne:
    """run_one (forking from ``zygote`` when given), recording each run's whole time."""

    def run(scenario: Scenario, variant: str, **kwargs: Any) -> RunResult:
        t0 = time.monotonic()
        result = run_one(scenario, variant, zygote=zygote, **kwargs)
        spent[(scenario.name, variant)] = time.monotonic() - t0
        return result

    return run


def matrix_wall(cells: list[Cell], jobs: int, root: Path, *, fresh: bool) -> MatrixOutcome:
    spent: dict[tuple[str, str], float] = {}
    with workers_for(root, fresh=fresh) as zygote:
        t0 = time.monotonic()
        outcome = run_matrix(cells, jobs=jobs, root=root, runner=timed_runner(zygote, spent))
        wall = time.monotonic() - t0
    overheads = [spent[(c.scenario.name, c.variant)] - own_time_s(c.scenario) for c in cells]
    ok = sum(e.as_expected for e in outcome.entries)
    how = "fresh interpreters" if fresh or zygote is None else "zygote"
    print(f"matrix ({how}): {len(cells)} runs, {ok} as expected, wall {wall:.1f} s, {jobs} jobs")
    print(
        f"  per-run overhead beyond gaps/stalls: median {statistics.median(overheads):.3f} s, "
        f"mean {statistics.mean(overheads):.3f} s, max {max(overheads):.3f} s"
    )
    longest = max(spent, key=spent.__getitem__)
    print(f"  longest run: {spent[longest]:.2f} s ({' / '.join(longest)})")
    return outcome


def fresh_vs_zygote(cells: list[Cell], jobs: int, root: Path) -> None:
    """Fresh, zygote, fresh again: a count that differs between the two fresh runs is the
    scenario's own noise; one where only the zygote run differs would be the zygote's."""
    first = matrix_wall(cells, jobs, root, fresh=True)
    forked = matrix_wall(cells, jobs, root, fresh=False)
    second = matrix_wall(cells, jobs, root, fresh=True)
    same_outcomes = noisy = zygote_only = 0
    for a, z, b in zip(first.entries, forked.entries, second.entries, strict=True):
        outcomes = {(e.verdict.outcome, e.as_expected) for e in (a, z, b)}
        same_outcomes += len(outcomes) == 1
        for name in COUNT_FIELDS:
            values = [getattr(e.result, name) for e in (a, z, b)]
            if values[0] == values[1] == values[2]:
                continue
            own = values[0] == values[2]  # both fresh runs agree: the zygote run differs
            zygote_only += own
            noisy += not own
            kind = "ZYGOTE ONLY" if own else "noise"
            print(
                f"  {kind}: {a.scenario} / {a.variant} {name}: fresh {values[0]}, "
                f"zygote {values[1]}, fresh {values[2]}"
            )
    print(f"verdicts identical (fresh, zygote, fresh): {same_outcomes} of {len(cells)} cells")
    print(
        f"counts that differ: {noisy} between the fresh runs too, "
        f"{zygote_only} only with the zygote"
    )


def stability(cells: list[Cell], repeat: int, jobs: int, root: Path) -> None:
    with workers_for(root) as zygote:
        runner = functools.partial(run_one, zygote=zygote)
        outcome = run_matrix(cells, repeat=repeat, jobs=jobs, root=root, runner=runner)
    unstable = 0
    for entry in outcome.entries:
        outcomes = [v.outcome for v in entry.verdicts]
        differing = sum(1 for o in outcomes if o != outcomes[0])
        unstable += differing > 0
        mark = "stable" if not differing else f"UNSTABLE ({differing} of {repeat} differ)"
        print(f"  {entry.scenario:28} {entry.variant:20} {outcomes[0]:5} x{repeat}  {mark}")
    print(
        f"verdict stability: {len(cells) - unstable} of {len(cells)} cells identical over "
        f"{repeat} runs"
    )


def turns_to_catch(cells: list[Cell], root: Path) -> None:
    print("turns needed to catch each bug (fewest turns at which the verdict is 'fail'):")
    with tempfile.TemporaryDirectory(prefix="bench-turns-") as tmp:
        for cell in (c for c in cells if c.expected == "fail"):
            caught = _fewest_turns(cell, Path(tmp), root)
            shown = str(caught) if caught else f"not within {cell.scenario.session.turns}"
            print(f"  {cell.scenario.name:28} {cell.variant:20} {shown}")


def _fewest_turns(cell: Cell, tmp: Path, root: Path) -> int | None:
    data = yaml.safe_load(Path(cell.scenario.path).read_text())
    limit = cell.scenario.session.turns
    candidates = [*range(1, min(limit, 5) + 1), *([limit] if limit > 5 else [])]
    for turns in candidates:
        data.setdefault("session", {})["turns"] = turns
        path = tmp / f"{cell.scenario.name}-{turns}.yaml"
        path.write_text(yaml.safe_dump(data))
        entry = run_cell(Cell(load_scenario(path), cell.variant, "fail"), repeat=1, root=root)
        if entry.verdict.outcome == "fail":
            return turns
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["scenarios"])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--jobs", type=int, help="runs in parallel (default: regress's)")
    parser.add_argument("--skip-turns", action="store_true")
    parser.add_argument("--matrix-only", action="store_true", help="only the matrix's figures")
    parser.add_argument("--fresh-vs-zygote", action="store_true")
    ns = parser.parse_args()
    root = Path.cwd()
    cells = plan(load_all(ns.paths))
    jobs = ns.jobs or default_jobs(cells, usable_cores())
    if ns.fresh_vs_zygote:
        fresh_vs_zygote(cells, jobs, root)
        return 0
    matrix_wall(cells, jobs, root, fresh=False)
    if ns.matrix_only:
        return 0
    stability(cells, ns.repeat, jobs, root)
    if not ns.skip_turns:
        turns_to_catch(cells, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
