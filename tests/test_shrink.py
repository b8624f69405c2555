"""``harness shrink``: the search with a fake in-process oracle, the file it writes, and real
end-to-end shrinks through the CLI (real workers, the real SDK, the mock server)."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.result import ServerStats, summarize
from harness.scenario import Scenario, load_scenario, parse_scenario
from harness.shrink import (
    REJECT_CONFIDENCE,
    VERIFY_RUNS,
    Evidence,
    NotReproduced,
    Step,
    ddmin,
    planned_calls,
    shows,
    shrink,
    smallest,
)
from harness.shrink_yaml import render
from harness.verdict import REASON_KEYS, Verdict, judge, reason_key

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

BIG = """\
version: 1
name: big
server:
  keepalive: {idle_timeout_ms: 40, close: fin}
  faults:
    - {kind: http_error, status: 503, calls: [3]}
    - {kind: stall, ms: 5, calls: [5]}
    - {kind: reset_on_reuse, mode: rst, calls: [9]}
client:
  kwargs: {max_retries: 2, timeout: 10}
session:
  turns: 20
  concurrency: 4
  idle_between_turns_ms: 60
  stream: true
  events:
    - {action: reload, after_turn: 7}
expect:
  errors: 0
variants:
  keepalive-mutating: fail
"""


@pytest.fixture
def big() -> Scenario:
    return parse_scenario(BIG, default_name="big")


# --- the pieces -------------------------------------------------------------------------------


def test_ddmin_finds_a_one_minimal_subset() -> None:
    calls: list[tuple[int, ...]] = []

    def keeps(items: tuple[int, ...]) -> bool:
        calls.append(items)
        return {3, 6} <= set(items)

    assert ddmin(range(8), keeps) == (3, 6)
    assert calls[0] == ()  # everything removed is tried first
    assert ddmin([1, 2], lambda items: True) == ()
    assert ddmin([], lambda items: pytest.fail("nothing to try")) == ()  # type: ignore[func-returns-value]


def test_smallest_tries_the_least_then_bisects() -> None:
    tried: list[int] = []

    def keeps(value: int) -> bool:
        tried.append(value)
        return value >= 13

    assert smallest(range(1, 101), keeps) == 13
    assert tried[:2] == [1, 50]
    assert len(tried) <= 8
    assert smallest(range(1, 2), lambda v: pytest.fail("one value: nothing to try")) == 1  # type: ignore[func-returns-value]


def test_evidence_reruns_misses_until_a_flaky_oracle_is_ruled_out() -> None:
    evidence = Evidence()
    evidence.observe([True])
    assert not evidence.lost(3, REJECT_CONFIDENCE)  # after one show, three misses: maybe flaky
    assert evidence.lost(6, REJECT_CONFIDENCE)
    evidence.observe([True] * 30)
    assert not evidence.lost(1, REJECT_CONFIDENCE)
    assert evidence.lost(2, REJECT_CONFIDENCE)  # thirty runs agree: two misses are enough
    flaky = Evidence()
    flaky.observe([True, False, True, True, False, True, True, True, False, True])
    assert not flaky.lost(6, REJECT_CONFIDENCE)
    assert 0.6 < flaky.posterior.rate_estimate()[0] < 0.8
    assert flaky.runs_to_show(0.99) == 5  # 0.3^4 > 1%: the posterior's tail asks for one more
    assert evidence.runs_to_show(0.99) == 1


# --- the search with a fake oracle --------------------------------------------------------


def use_after_close(scenario: Scenario) -> bool:
    """Like keepalive-mutating: the second call of a session fails once the first closed."""
    return scenario.client.close_request_clients and scenario.session.turns >= 2


def test_shrink_removes_what_the_bug_does_not_need(big: Scenario) -> None:
    steps: list[Step] = []
    result = shrink(big, use_after_close, on_step=steps.append)
    session = result.final.session
    assert (session.turns, session.concurrency, session.calls_per_turn) == (2, 1, 1)
    assert (session.idle_between_turns_ms, session.stream, session.events) == (0, False, ())
    assert result.final.server.faults == ()
    assert result.calibration == (True,)
    assert not result.flaky and result.check_repeat == 1
    assert result.verification == (True,) * VERIFY_RUNS
    assert result.runs == 1 + sum(len(s.runs) for s in steps) + VERIFY_RUNS <= 40
    assert steps[0].field == "server.faults" and steps[0].after == "[]" and steps[0].kept
    turns = [s for s in steps if s.field == "session.turns"]
    assert [(s.after, s.kept) for s in turns][:2] == [("1", False), ("10", True)]
    assert steps[1].calls == (planned_calls(big), planned_calls(big))


def test_gaps_stay_clear_of_the_idle_timeout(big: Scenario) -> None:
    tried: list[float] = []

    def stale_pool(scenario: Scenario) -> bool:  # only a gap past the 40 ms timeout shows it
        tried.append(scenario.session.idle_between_turns_ms)
        return scenario.session.idle_between_turns_ms > 40

    result = shrink(big, stale_pool)
    assert result.final.session.idle_between_turns_ms == 50  # 40 ms + the guard
    assert not [gap for gap in tried if 30 < gap < 50]
    assert result.final.session.turns == 1


def test_events_are_shrunk_and_hold_their_turns(big: Scenario) -> None:
    def reload_needed(scenario: Scenario) -> bool:
        return bool(scenario.session.events)

    result = shrink(big, reload_needed)
    assert [e.label for e in result.final.session.events] == ["reload after turn 1"]
    assert result.final.session.turns == 1

    def reload_after_turn_3(scenario: Scenario) -> bool:
        return any(e.turn >= 3 for e in scenario.session.events)

    result = shrink(big, reload_after_turn_3)
    assert [e.label for e in result.final.session.events] == ["reload after turn 3"]
    assert result.final.session.turns == 3  # the event's turn: no fewer


def test_a_flaky_regression_is_rerun_not_lost(big: Scenario) -> None:
    rng = random.Random(7)

    def flaky(scenario: Scenario) -> bool:
        return use_after_close(scenario) and rng.random() < 0.8

    outcomes = [shrink(big, flaky, repeats=3) for _ in range(20)]
    minimal = [
        r for r in outcomes if (r.final.session.turns, r.final.session.concurrency) == (2, 1)
    ]
    assert len(minimal) >= 18
    assert all(use_after_close(r.final) for r in outcomes)  # never a scenario that lost it
    reran = [s for r in outcomes for s in r.steps if s.kept and not s.runs[0]]
    assert reran  # misses on a kept candidate were re-run, and it showed
    assert sum(r.show_rate < 0.95 for r in outcomes) >= 10  # the flakiness was measured
    assert sum(r.flaky for r in outcomes) >= 19  # the verification runs measure it
    assert all(3 <= r.check_repeat <= 8 for r in outcomes if r.flaky)


def test_a_scenario_that_never_shows_it_is_not_a_reproducer(big: Scenario) -> None:
    runs: list[int] = []
    with pytest.raises(NotReproduced) as caught:
        shrink(big, lambda s: runs.append(1) is not None)
    assert caught.value.runs == (False,) * 6 and len(runs) == 6


# --- verdict reasons and the file ----------------------------------------------------------


def test_reason_keys_name_every_kind_of_reason(big: Scenario) -> None:
    assert reason_key("errors 3 > 0") == "errors"
    assert reason_key("close_wait_after_gc 2 > 0") == "close_wait_after_gc"
    assert reason_key("run hung: the watchdog fired after 9 s") == "hung"
    assert reason_key("the factory raised building 2 of 4 request clients: X") == "factory_raised"
    assert reason_key("the mock server failed 1 times (a harness bug; see its log)") == (
        "server_failed"
    )
    assert {"errors", "close_wait_peak", "hung", "crashed"} <= set(REASON_KEYS)
    run = summarize(
        scenario="big",
        variant="v",
        status="completed",
        records=[],
        samples=[],
        server=ServerStats(),
        wall_s=0.1,
        environment={},
    )
    verdict = Verdict(healthy=False, reasons=("retries 2 > 0",), expected="pass")
    assert shows(run, verdict, None) and shows(run, verdict, "retries")
    assert not shows(run, verdict, "errors")
    assert not shows(run, judge(run, big.expect, "pass"), None)


def test_the_written_file_loads_back_with_its_comments(big: Scenario, tmp_path: Path) -> None:
    result = shrink(big, use_after_close)
    text = render(result, source="big.yaml", factory="keepalive-mutating", what="a regression",
                  out="big-min.yaml")  # fmt: skip
    path = tmp_path / "big-min.yaml"
    path.write_text(text)
    loaded = load_scenario(path)
    assert loaded.name == "big-min"
    assert loaded.session == result.final.session and loaded.server == result.final.server
    assert loaded.expect == big.expect and dict(loaded.variants) == dict(big.variants)
    assert "  turns: 2  # was 20\n" in text
    assert "#   session.turns: 20 -> 2 (calls 20 -> 2, " in text
    assert "; 1 lost it\n" in text
    assert (
        "# Check it: harness check --scenario big-min.yaml --factory keepalive-mutating\n" in text
    )


def test_faults_and_events_that_stay_are_written_as_loaded(big: Scenario) -> None:
    def needs_both(scenario: Scenario) -> bool:
        stall = any(f.kind == "stall" for f in scenario.server.faults)
        return stall and bool(scenario.session.events) and scenario.session.stream

    result = shrink(big, needs_both)
    text = render(result, source="big.yaml", factory="f.py:g", what="a regression", out="o.yaml")
    loaded = parse_scenario(text)
    assert loaded.server == result.final.server and loaded.session == result.final.session
    assert [f.kind for f in loaded.server.faults] == ["stall"]
    assert (loaded.session.turns, loaded.session.stream) == (1, True)
    assert loaded.session.events[0].after_turn == 1
    assert "  faults:  # was [http_error, stall, reset_on_reuse]\n" in text
    assert "#   session.stream: kept at true, false lost it; 3 runs\n" in text


# --- end to end: real runs --------------------------------------------------------------------

SMALL = """\
version: 1
description: request clients closed after use
client:
  kwargs: {max_retries: 0, timeout: 5}
  close_request_clients: true
session:
  turns: 6
  concurrency: 2
  idle_between_turns_ms: 20
expect:
  errors: 0
variants:
  keepalive-mutating: fail
  keepalive-fixed: pass
"""


@pytest.mark.slow
def test_shrink_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    out = tmp_path / "min.yaml"
    code = main(["shrink", str(scenario), "--factory", "keepalive-mutating", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    shrunk = load_scenario(out)
    assert (shrunk.session.turns, shrunk.session.concurrency) == (2, 1)
    assert shrunk.session.idle_between_turns_ms == 0
    assert "session.turns 6 -> 1: lost it (shown in 0 of " in printed
    assert f"oracle runs: {out}\n" in printed
    assert scenario.read_text() == SMALL  # the user's file is left alone
    check = ["check", "--scenario", str(out), "--factory"]
    assert main([*check, "keepalive-mutating"]) == 1  # it still catches the factory
    assert main([*check, "keepalive-fixed"]) == 0


@pytest.mark.slow
def test_a_healthy_factory_does_not_reproduce(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL.replace("turns: 6", "turns: 2").replace("concurrency: 2", ""))
    out = tmp_path / "min.yaml"
    code = main(["shrink", str(scenario), "--factory", "keepalive-fixed", "--out", str(out)])
    assert code == 1
    assert capsys.readouterr().out.endswith(
        "harness shrink: small does not reproduce a regression with keepalive-fixed: showed it"
        " in 0 of 6 runs; nothing to shrink, nothing written\n"
    )
    assert not out.exists()


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    base = ["shrink", str(scenario), "--factory", "keepalive-mutating"]
    assert main([*base, "--reason", "errros"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness shrink: error: --reason 'errros' is not a verdict reason;")
    assert err.count("\n") == 1
    assert main([*base, "--reason", "close_wait_peak"]) == 2
    assert capsys.readouterr().err == (
        f"harness shrink: error: {scenario}: `expect:` sets no close_wait_peak threshold, so no"
        " run can show it; add `expect: {close_wait_peak: 0}` or pick another --reason\n"
    )
    assert main([*base, "--out", str(tmp_path / "no" / "x.yaml")]) == 2
    assert "not a file in an existing folder" in capsys.readouterr().err
    assert main([*base, "--out", str(scenario)]) == 2
    assert "is the scenario itself" in capsys.readouterr().err
    assert main([*base[:2], "--factory", "no_such_module:create_openai_client"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness shrink: error: no_such_module:create_openai_client: untestable")
    assert err.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("version: 1\nsession:\n  turns: 0\n"))
    assert main(["shrink", str(bad), "--factory", "keepalive-mutating"]) == 2
    assert "bad.yaml:3: key 'session.turns'" in capsys.readouterr().err
