"""The regress matrix: every (scenario, variant) cell, run in parallel, judged.

Each cell runs ``repeat`` times through :func:`harness.runner.run_one` (one worker process
and one mock server per run) and every run gets a :class:`Verdict`. Cells run on a thread pool
of ``jobs`` threads: a run spends most of its time in its worker process or asleep in idle
gaps, so threads are enough to overlap them. On Ctrl-C (any KeyboardInterrupt, so also
SIGTERM under :func:`harness.interrupts.handling`), cells not yet started are dropped and
running ones are killed, with further signals ignored meanwhile, and the finished ones are
returned with ``interrupted=True`` so the reports still get written.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.errors import RunCancelled
from harness.interrupts import deferring, ignoring, in_slices
from harness.planned import planned_duration_s
from harness.result import RunResult
from harness.runner import run_one
from harness.schema import Expectation, Scenario
from harness.verdict import RegressEntry, Verdict, judge

__all__ = [
    "Cell",
    "MatrixOutcome",
    "cpu_seconds",
    "default_jobs",
    "expected_seconds",
    "plan",
    "run_cell",
    "run_matrix",
    "usable_cores",
]

RunOne = Callable[..., RunResult]
CALL_S = 0.03  # a typical loopback call through the SDK, for scheduling estimates
# The CPU of a run, client and mock server together, measured on the bundled regress
# (20.9 CPU-s for 122 runs and 1,604 calls, the zygote's start included): besides its calls
# (forking the worker, importing the factory, the samples), and per call.
RUN_CPU_S: Final = 0.08
CALL_CPU_S: Final = 0.006
MAX_JOBS_PER_CORE: Final = 4  # bounds the default whatever a scenario plans to wait


@dataclass(frozen=True)
class Cell:
    """One (scenario, variant) pair and the role the scenario gives the variant."""

    scenario: Scenario
    variant: str
    expected: Expectation


@dataclass(frozen=True)
class MatrixOutcome:
    entries: tuple[RegressEntry, ...]
    interrupted: bool


def plan(scenarios: Sequence[Scenario], only: Sequence[str] = ()) -> list[Cell]:
    """The cells to run, in file order; ``only`` keeps just the named variants."""
    return [
        Cell(s, variant, expected)
        for s in scenarios
        for variant, expected in s.variant_expectations().items()
        if not only or variant in only
    ]


def expected_seconds(scenario: Scenario) -> float:
    """A rough estimate of a run's length, for scheduling only: calls, gaps and stalls."""
    session = scenario.session
    calls = session.turns * session.calls_per_turn
    stalls_ms = sum(getattr(fault, "ms", 0.0) for fault in scenario.server.faults)
    idle_ms = session.turns * session.idle_between_turns_ms
    return CALL_S * calls + (idle_ms + stalls_ms + session.timeline_idle_ms()) / 1000


def cpu_seconds(scenario: Scenario) -> float:
    """A rough estimate of the CPU one run keeps busy: its fixed cost and every call of every
    session (concurrent sessions wait in parallel, but they compute one after the other)."""
    session = scenario.session
    calls = session.turns * session.calls_per_turn * session.concurrency
    return RUN_CPU_S + CALL_CPU_S * calls


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_jobs(cells: Sequence[Cell], cores: int) -> int:
    """How many runs to keep in parallel so that ``cores`` cores stay busy, no more.

    A run computes for :func:`cpu_seconds` and waits for what its scenario plans to spend
    asleep (:func:`~harness.planned.planned_duration_s`: idle gaps, latency, chunk delays,
    stalls, retry-after). While one run waits another can compute, so over all the cells
    ``cores x (CPU + waiting) / CPU`` runs keep the cores busy. Rounded, and kept between
    ``max(2, cores)`` (a worker and its server overlap even without waiting) and
    ``MAX_JOBS_PER_CORE x cores``. Deterministic: the same cells and cores give the same number.
    """
    cpu = sum(cpu_seconds(c.scenario) for c in cells)
    waiting = sum(min(planned_duration_s(c.scenario), 3600.0) for c in cells)
    ratio = (cpu + waiting) / cpu if cpu > 0 else 1.0
    wanted = math.floor(cores * ratio + 0.5)
    return max(2, cores, min(wanted, MAX_JOBS_PER_CORE * cores))


def run_cell(
    cell: Cell,
    *,
    repeat: int,
    root: Path,
    runner: RunOne = run_one,
    cancel: threading.Event | None = None,
    on_start: Callable[[Cell], None] | None = None,
) -> RegressEntry:
    """Run one cell ``repeat`` times and judge each run; ``cancel`` stops it (RunCancelled).

    ``on_start(cell)`` is called (on this thread) just before the first run starts.
    """
    if on_start is not None:
        on_start(cell)
    runs: list[RunResult] = []
    verdicts: list[Verdict] = []
    for _ in range(repeat):
        if cancel is not None and cancel.is_set():
            raise RunCancelled(f"{cell.scenario.name} / {cell.variant} was not started")
        result = runner(cell.scenario, cell.variant, root=root, cancel=cancel)
        runs.append(result)
        verdicts.append(judge(result, cell.scenario.expect, cell.expected))
    return RegressEntry(
        scenario=cell.scenario.name,
        variant=cell.variant,
        description=cell.scenario.description,
        runs=tuple(runs),
        verdicts=tuple(verdicts),
    )


def _settles(future: Future[RegressEntry], seconds: float) -> bool:
    return bool(wait([future], seconds).done)


def run_matrix(
    cells: Sequence[Cell],
    *,
    repeat: int = 1,
    jobs: int = 1,
    root: Path,
    on_entry: Callable[[RegressEntry], None] | None = None,
    on_start: Callable[[Cell], None] | None = None,
    runner: RunOne = run_one,
) -> MatrixOutcome:
    """Run every cell; results come back in plan order whatever order they finish in.

    ``on_start(cell)`` and ``on_entry(entry)`` report progress; both run on pool threads.
    """
    done: dict[int, RegressEntry] = {}
    lock = threading.Lock()
    cancel = threading.Event()

    def finished(index: int, future: Future[RegressEntry]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            # A harness bug (or a cancelled run): stop cells this thread would start next,
            # before it picks one up; the error itself re-raises in the caller below.
            cancel.set()
            return
        with lock:
            done[index] = future.result()
            if on_entry is not None:
                on_entry(done[index])

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="cell")
    futures = []
    # Longest first, so the matrix does not end waiting on one long cell started last.
    order = sorted(range(len(cells)), key=lambda i: -expected_seconds(cells[i].scenario))
    try:
        with deferring():  # a signal now would leave a started pool thread unknown to the pool
            for index in order:
                future = pool.submit(
                    run_cell,
                    cells[index],
                    repeat=repeat,
                    root=root,
                    runner=runner,
                    cancel=cancel,
                    on_start=on_start,
                )
                future.add_done_callback(functools.partial(finished, index))
                futures.append(future)
        for future in futures:
            # Waited for in slices, so a signal handed to a pool thread still interrupts.
            in_slices(functools.partial(_settles, future))
            future.result()  # re-raises a harness bug in a cell instead of hiding it
    except BaseException as exc:
        # Ctrl-C/SIGTERM (harness.interrupts), or a harness bug in one cell: kill the running
        # workers (within RunCancelled's poll interval) and drop the cells not yet started
        # rather than run them all. A second signal must not cut this short.
        with ignoring():
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(exc, KeyboardInterrupt):
            return MatrixOutcome(tuple(done[i] for i in sorted(done)), interrupted=True)
        raise
    pool.shutdown(wait=True)
    return MatrixOutcome(tuple(done[i] for i in sorted(done)), interrupted=False)
