"""Verdicts: one reason per exceeded threshold, roles, and the summary round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.result import CallRecord, RunResult, ServerStats, summarize
from harness.scenario import Expectations
from harness.verdict import RegressEntry, RegressSummary, Verdict, judge


def _run(**changes: object) -> RunResult:
    base = summarize(
        scenario="s",
        variant="v",
        status="completed",
        records=[],
        samples=[],
        server=ServerStats(),
        wall_s=0.5,
        environment={},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_healthy_run_passes() -> None:
    v = judge(_run(), Expectations(), "pass")
    assert (v.healthy, v.reasons, v.outcome, v.as_expected) == (True, (), "pass", True)


def test_each_threshold_gives_a_reason() -> None:
    run = _run(
        errors=9,
        retries=4,
        close_wait_peak=3,
        close_wait_growth=9,
        close_wait_after_close=2,
        close_wait_after_gc=1,
        latency_p95_ms=812.34,
    )
    expect = Expectations(
        errors=0,
        retries=0,
        close_wait_peak=1,
        close_wait_growth=0,
        close_wait_after_close=0,
        close_wait_after_gc=0,
        p95_latency_ms=500,
    )
    v = judge(run, expect, "fail")
    assert v.reasons == (
        "errors 9 > 0",
        "retries 4 > 0",
        "close_wait_peak 3 > 1",
        "close_wait_growth 9 > 0",
        "close_wait_after_close 2 > 0",
        "close_wait_after_gc 1 > 0",
        "p95_latency_ms 812.3 > 500",
    )
    assert (v.outcome, v.as_expected) == ("fail", True)


def test_unchecked_thresholds_are_ignored() -> None:
    v = judge(_run(retries=50, close_wait_peak=7), Expectations(), "pass")
    assert v.healthy


def test_incomplete_run_is_never_healthy() -> None:
    v = judge(_run(status="hung", detail="watchdog expired after 12.0 s"), Expectations(), "pass")
    assert v.reasons == ("run hung: watchdog expired after 12.0 s",)
    assert not v.as_expected


def test_roles() -> None:
    bad = _run(errors=1)
    assert not judge(bad, Expectations(), "pass").as_expected
    assert judge(bad, Expectations(), "fail").as_expected
    assert judge(bad, Expectations(), "observe").as_expected
    assert not judge(_run(), Expectations(), "fail").as_expected


def test_entry_picks_the_unexpected_run_and_summary_round_trips() -> None:
    good, bad = _run(), _run(errors=2)
    verdicts = (judge(good, Expectations(), "pass"), judge(bad, Expectations(), "pass"))
    entry = RegressEntry("s", "v", "desc", (good, bad), verdicts)
    assert entry.result is bad
    assert entry.verdict.reasons == ("errors 2 > 0",)
    assert not entry.as_expected
    summary = RegressSummary(
        run_id="20261124T000000000Z-regress",
        command="regress",
        started="2026-11-24T00:00:00+00:00",
        wall_s=1.0,
        entries=(entry,),
        environment={"python": "3.11"},
    )
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["schema"] == 1
    assert data["ok"] is False
    assert RegressSummary.from_dict(data) == summary
    assert Verdict.from_dict(data["entries"][0]["verdicts"][1]) == verdicts[1]


def test_entry_from_dict_refuses_runs_without_verdicts() -> None:
    run = _run()
    data = RegressEntry("s", "v", "", (run,), (judge(run, Expectations(), "pass"),)).to_dict()
    with pytest.raises(ValueError, match="needs one verdict per run and at least one run"):
        RegressEntry.from_dict({**data, "runs": []})
    with pytest.raises(ValueError, match="has 1 runs, 0 verdicts"):
        RegressEntry.from_dict({**data, "verdicts": []})


def test_a_mock_server_failure_makes_the_run_unhealthy() -> None:
    run = _run(server=ServerStats(faults_fired={"server_error": 2}))
    v = judge(run, Expectations(), "pass")
    assert v.reasons == ("the mock server failed 2 times (a harness bug; see its log)",)


def test_a_factory_that_raised_building_request_clients_is_never_healthy() -> None:
    records = [
        CallRecord(0, 1, 1, False, 1.0, 0.0, "ValueError", ("ValueError: no proxy",), 0, True),
        CallRecord(0, 2, 1, False, 1.0, 0.1, "openai.APIConnectionError", ("x",), 2, False),
        CallRecord(0, 3, 1, False, 1.0, 0.2, "KeyError", ("KeyError: 'k'",), 0, True),
    ]
    run = dataclasses.replace(_run(), records=tuple(records), calls=3, errors=3)
    # errors allowed: the factory's failure alone makes it unhealthy, naming the first one
    v = judge(run, Expectations(errors=None), "pass")
    assert (v.healthy, v.reasons) == (
        False,
        ("the factory raised building 2 of 3 request clients: ValueError: no proxy",),
    )
    plain = dataclasses.replace(run, records=(dataclasses.replace(records[1]),))
    assert judge(plain, Expectations(errors=None), "pass").healthy
