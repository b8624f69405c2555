"""The matrix: plan order, results in plan order, and a failing cell stops the rest."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from _wait import blocked_in, until

from harness.interrupts import handling, in_slices
from harness.matrix import (
    Cell,
    cpu_seconds,
    default_jobs,
    expected_seconds,
    plan,
    run_matrix,
    usable_cores,
)
from harness.result import RunResult, ServerStats, summarize
from harness.scenario import Scenario, parse_scenario

QUICK = (
    "version: 1\nname: quick\nsession: {turns: 1}\n"
    "variants: {baseline: pass, keepalive-fixed: pass}\n"
)
SLOW = "version: 1\nname: slow\nsession: {turns: 50, idle_between_turns_ms: 100}\n"


def _result(scenario: Scenario, variant: str) -> RunResult:
    return summarize(
        scenario=scenario.name,
        variant=variant,
        status="completed",
        records=[],
        samples=[],
        server=ServerStats(),
        wall_s=0.0,
        environment={},
    )


def test_plan_and_variant_filter() -> None:
    quick, slow = parse_scenario(QUICK), parse_scenario(SLOW)
    assert [(c.scenario.name, c.variant, c.expected) for c in plan([quick, slow])] == [
        ("quick", "baseline", "pass"),
        ("quick", "keepalive-fixed", "pass"),
        ("slow", "baseline", "pass"),
        ("slow", "keepalive-mutating", "observe"),
        ("slow", "keepalive-fixed", "pass"),
        ("slow", "shared-http-client", "observe"),
        ("slow", "baseline-async", "pass"),
        ("slow", "keepalive-mutating-async", "observe"),
        ("slow", "keepalive-fixed-async", "pass"),
        ("slow", "shared-http-client-async", "observe"),
        ("slow", "provider-keeps-closed", "observe"),
        ("slow", "provider-rebuild-on-closed", "observe"),
        ("slow", "provider-atomic-swap", "pass"),
        ("slow", "provider-keeps-closed-async", "observe"),
        ("slow", "provider-rebuild-on-closed-async", "observe"),
        ("slow", "provider-atomic-swap-async", "pass"),
    ]
    assert [c.variant for c in plan([quick, slow], ["keepalive-fixed"])] == [
        "keepalive-fixed",
        "keepalive-fixed",
    ]
    assert expected_seconds(slow) > expected_seconds(quick)


def test_default_jobs_from_planned_waiting_versus_cpu() -> None:
    quick, slow = parse_scenario(QUICK), parse_scenario(SLOW)
    mid = parse_scenario("version: 1\nsession: {turns: 5, idle_between_turns_ms: 20}\n")
    four = parse_scenario("version: 1\nsession: {turns: 2, concurrency: 4}\n")
    # 0.08 s per run + 0.006 s per call, every session's calls counted
    assert cpu_seconds(quick) == pytest.approx(0.086, abs=1e-9)
    assert cpu_seconds(four) == pytest.approx(0.08 + 0.006 * 8, abs=1e-9)
    # nothing to wait on: the floor, max(2, cores)
    assert [default_jobs(plan([quick]), cores) for cores in (1, 2, 4)] == [2, 2, 4]
    # (0.11 s CPU + 0.1 s gaps) / 0.11 s CPU = 1.91 per core: 3.82 rounds to 4 on 2 cores
    assert [default_jobs(plan([mid]), cores) for cores in (1, 2, 4)] == [2, 4, 8]
    # 5 s of gaps against 0.38 s of CPU: 14 per core, capped at 4 per core
    assert [default_jobs(plan([slow]), cores) for cores in (1, 2, 4)] == [4, 8, 16]
    # over all the cells, (5.49 s CPU + 70 s gaps) / 5.49 s: capped at 8 on 2 cores
    assert default_jobs(plan([quick, slow]), 2) == 8
    assert usable_cores() >= 1


def test_longest_first_but_results_in_plan_order() -> None:
    quick, slow = parse_scenario(QUICK), parse_scenario(SLOW)
    cells = [Cell(quick, "baseline", "pass"), Cell(slow, "baseline", "pass")]
    started: list[str] = []
    lock = threading.Lock()

    def runner(scenario: Scenario, variant: str, **_: Any) -> RunResult:
        with lock:
            started.append(scenario.name)
        return _result(scenario, variant)

    outcome = run_matrix(cells, jobs=1, root=Path.cwd(), runner=runner)
    assert started == ["slow", "quick"]
    assert [e.scenario for e in outcome.entries] == ["quick", "slow"]
    assert not outcome.interrupted


def test_a_failing_cell_stops_the_cells_not_yet_started() -> None:
    quick = parse_scenario(QUICK)
    cells = [Cell(quick, f"v{i}", "pass") for i in range(5)]
    calls: list[str] = []

    def runner(scenario: Scenario, variant: str, **_: Any) -> RunResult:
        calls.append(variant)
        raise RuntimeError("harness bug")

    with pytest.raises(RuntimeError, match="harness bug"):
        run_matrix(cells, jobs=1, root=Path.cwd(), runner=runner)
    assert calls == ["v0"]


def test_a_signal_handed_to_a_pool_thread_still_interrupts_the_matrix() -> None:
    """The kernel may deliver SIGINT to any thread (a Ctrl-C Ctrl-C sends the second one to
    another thread for sure): the main thread, waiting on the cell, must still stop it."""
    cells = [Cell(parse_scenario(QUICK), "baseline", "pass")]
    cancelled: list[bool] = []

    def runner(scenario: Scenario, variant: str, *, cancel: threading.Event, **_: Any) -> RunResult:
        main = threading.main_thread()  # acts only once it waits for this cell
        until(lambda: blocked_in(main, in_slices), what="the main thread waiting for the cell")
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this pool thread
        cancelled.append(cancel.wait(60))  # set only once the main thread ran the handler
        return _result(scenario, variant)

    with handling() as caught:
        outcome = run_matrix(cells, jobs=1, root=Path.cwd(), runner=runner)
    assert cancelled == [True]
    assert outcome.interrupted
    assert caught.signum == signal.SIGINT
