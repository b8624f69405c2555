"""Regress figures: wall time, per-run overhead, verdict stability, turns needed to catch.

    python benchmarks/bench_regress.py [--repeat 10] [--jobs 2] [--skip-turns] [PATHS...]

Prints, for the bundled matrix (or PATHS):
- the wall time of one whole matrix run, and each run's overhead beyond the scenario's own
  time (idle gaps): process start, imports, server start, sampling;
- verdict stability: each (scenario, variant) run ``--repeat`` times, and how many runs gave
  a verdict other than the first one;
- for every cell the scenario expects to catch (`fail`), the fewest turns that catch it.
Figures only; no pass/fail thresholds (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from harness.commands._common import load_all
from harness.matrix import Cell, plan, run_cell, run_matrix
from harness.scenario import Scenario, load_scenario


def own_time_s(scenario: Scenario) -> float:
    """What the scenario spends on purpose: idle gaps and stalls (a lower bound)."""
    session = scenario.session
    stalls = sum(getattr(f, "ms", 0) for f in scenario.server.faults) / 1000
    return session.turns * session.idle_between_turns_ms / 1000 + stalls


def matrix_wall(cells: list[Cell], jobs: int, root: Path) -> None:
    t0 = time.monotonic()
    outcome = run_matrix(cells, jobs=jobs, root=root)
    wall = time.monotonic() - t0
    overheads = [
        run.wall_s - own_time_s(cell.scenario)
        for cell, entry in zip(cells, outcome.entries, strict=True)
        for run in entry.runs
    ]
    ok = sum(e.as_expected for e in outcome.entries)
    print(f"matrix: {len(cells)} runs, {ok} as expected, wall {wall:.1f} s with {jobs} jobs")
    print(
        f"per-run overhead beyond gaps/stalls: median {statistics.median(overheads):.2f} s, "
        f"max {max(overheads):.2f} s"
    )


def stability(cells: list[Cell], repeat: int, jobs: int, root: Path) -> None:
    outcome = run_matrix(cells, repeat=repeat, jobs=jobs, root=root)
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
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-turns", action="store_true")
    ns = parser.parse_args()
    root = Path.cwd()
    cells = plan(load_all(ns.paths))
    matrix_wall(cells, ns.jobs, root)
    stability(cells, ns.repeat, ns.jobs, root)
    if not ns.skip_turns:
        turns_to_catch(cells, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
