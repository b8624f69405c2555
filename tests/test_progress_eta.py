"""The live display's time left: from the plan, not from the items that happened to finish
first (a fake clock, no terminal)."""

from __future__ import annotations

import io

from harness.progress import Live


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _live(clock: Clock) -> Live:
    live = Live(io.StringIO(), clock=clock)
    # 2 quick cells, then 86 of 2 s: 173 planned seconds
    live.plan([("q1", 0.5), ("q2", 0.5), *((f"c{i}", 2.0) for i in range(86))])
    return live


def test_quick_early_finishers_do_not_shrink_the_estimate() -> None:
    clock = Clock()
    live = _live(clock)
    assert live.left() == 173.0  # nothing measured yet: the plan as it stands, one at a time
    live.started("q1")
    live.started("q2")
    clock.now = 0.5
    live.finished("q1", "", failed=False)
    live.finished("q2", "", failed=False)
    # two ran at once and took their planned time: 86 x 2 s over 2 at a time
    assert live.left() == 86.0
    for key in ("c0", "c1"):
        live.started(key)
    clock.now = 1.5  # each running cell has done 1 s of its 2
    assert live.left() == (84 * 2.0 + 1.0 + 1.0) / 2


def test_the_pace_of_finished_items_scales_the_rest() -> None:
    clock = Clock()
    live = _live(clock)
    live.started("q1")
    clock.now = 1.0  # planned 0.5 s, took 1 s: everything is assumed twice as slow
    live.finished("q1", "", failed=False)
    assert live.left() == 0.5 * 2 + 86 * 2.0 * 2


def test_items_running_past_their_plan_raise_the_estimate_before_any_ends() -> None:
    clock = Clock()
    live = Live(io.StringIO(), clock=clock)
    live.plan([("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)])
    live.started("a")
    live.started("b")
    clock.now = 3.0  # a loaded machine: both have run three times their plan, none has ended
    before = live.left()
    assert before == 3.0  # c and d at that pace, two at a time (the plan alone says 1.0)
    live.finished("a", "", failed=False)
    live.finished("b", "", failed=False)
    assert live.left() == before  # the first items to end confirm it: no jump


def test_the_last_long_item_is_not_divided_among_idle_jobs() -> None:
    clock = Clock()
    live = Live(io.StringIO(), clock=clock)
    live.plan([("a", 1.0), ("b", 1.0), ("long", 30.0)])
    live.started("a")
    live.started("b")
    clock.now = 1.0
    live.finished("a", "", failed=False)
    live.finished("b", "", failed=False)
    assert live.left() == 30.0  # not 15: one item cannot run on two jobs


def test_a_budget_without_a_plan_leaves_the_estimate_to_rich() -> None:
    live = Live(io.StringIO(), clock=Clock())
    live.budget(10)
    assert live.left() is None
