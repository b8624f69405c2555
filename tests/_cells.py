"""Regress cells built from chosen figures, for the report tests that need no real run."""

from __future__ import annotations

import dataclasses

from harness.result import ServerStats, summarize
from harness.scenario import Expectation, Expectations
from harness.verdict import RegressEntry, judge

EXPECT = Expectations(errors=0, retries=0)


def cell(
    scenario: str,
    variant: str,
    expected: Expectation = "pass",
    *,
    errors: int = 0,
    close_wait: tuple[int, ...] = (0, 0),
) -> RegressEntry:
    """One cell of one completed run with these figures, judged against :data:`EXPECT`."""
    result = dataclasses.replace(
        summarize(
            scenario=scenario,
            variant=variant,
            status="completed",
            records=[],
            samples=[],
            server=ServerStats(),
            wall_s=0.5,
            environment={},
        ),
        errors=errors,
        close_wait_series=close_wait,
        close_wait_after_gc=close_wait[-1],
        close_wait_live_after_gc=close_wait[-1],
    )
    verdict = judge(result, EXPECT, expected)
    return RegressEntry(scenario, variant, "", (result,), (verdict,))
