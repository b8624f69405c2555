"""``session.timeline``: the schema extension a replayed production timeline uses, the turn
bookkeeping (:class:`TimelineTurns`) and both gateways replaying it against the mock server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from harness.agateway import AsyncGateway
from harness.conversation import Round, TimelineTurns
from harness.errors import ScenarioError
from harness.factory import resolve_factory
from harness.gateway import Gateway
from harness.mockserver import MockServer
from harness.result import CallRecord, ServerCall, ServerStats
from harness.scenario import Scenario, TimelineCall, TimelineSession, parse_scenario
from harness.timeline import replay_session
from harness.variants._http import sdk_stack

pytestmark = pytest.mark.sdk

TIMELINE = """\
version: 1
server: {latency_ms: 5}
client: {kwargs: {timeout: 10}}
session:
  timeline:
    - calls:
        - {stream: true, idle_ms: 120}
        - {idle_ms: 10}
        - {stream: true, idle_ms: 0}
    - start_ms: 60
      calls:
        - {idle_ms: 30}
"""


def test_a_timeline_decides_turns_and_concurrency_and_round_trips() -> None:
    scenario = parse_scenario(TIMELINE)
    session = scenario.session
    assert (session.turns, session.concurrency, session.calls_per_turn) == (3, 2, 1)
    assert session.timeline == (
        TimelineSession(
            0,
            (TimelineCall(True, 120), TimelineCall(False, 10), TimelineCall(True, 0)),
        ),
        TimelineSession(60, (TimelineCall(False, 30),)),
    )
    assert session.timeline_idle_ms() == 130
    assert session.streams() is True
    assert Scenario.from_dict(scenario.to_dict()) == scenario


def test_scenarios_without_a_timeline_serialize_as_before() -> None:
    scenario = parse_scenario("version: 1\nsession: {turns: 2}\n")
    assert "timeline" not in scenario.to_dict()["session"]
    assert scenario.session.timeline_idle_ms() == 0
    assert Scenario.from_dict(scenario.to_dict()) == scenario


@pytest.mark.parametrize(
    ("session", "line", "key", "message"),
    [
        ("timeline: []", 3, "session.timeline", "needs at least one session"),
        ("timeline: [{start_ms: 5}]", 3, "session.timeline[0]", "needs at least one call"),
        ("timeline: [{calls: []}]", 3, "session.timeline[0].calls", "needs at least one call"),
        ("turns: 3\n  timeline: [{calls: [{}]}]", 3, "session.turns", "goes without `timeline`"),
        ("timeline: [{calls: [{}]}]\n  stream: true", 4, "session.stream", "goes without"),
        (
            "abandon_streams: true\n  timeline: [{calls: [{}]}]",
            3,
            "session.abandon_streams",
            "needs a call with `stream: true`",
        ),
        (
            "timeline: [{calls: [{idle_ms: -1}]}]",
            3,
            "session.timeline[0].calls[0].idle_ms",
            "out of range",
        ),
        ("timeline: [{calls: [{gap: 1}]}]", 3, "session.timeline[0].calls[0].gap", "unknown key"),
        (
            'timeline: [{name: "caf\\u00e9", calls: [{}]}]',
            3,
            "session.timeline[0].name",
            "goes in a header: use printable ASCII",
        ),
    ],
)
def test_bad_timelines_name_line_and_key(session: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(f"version: 1\nsession:\n  {session}\n", path="t.yaml")
    assert (caught.value.line, caught.value.key) == (line, key)
    assert message in caught.value.message


def test_turns_complete_in_order_once_every_session_is_past_them() -> None:
    session = parse_scenario(TIMELINE).session
    turns = TimelineTurns(session)
    assert turns.finished(0, 1, session) == ()  # session 1 has not made its call 1
    assert turns.finished(0, 2, session) == ()
    assert turns.finished(1, 1, session) == (1, 2)  # its only call: done with every turn
    assert turns.finished(0, 3, session) == (3,)


def _calls_by_session(stats: ServerStats) -> dict[str, list[ServerCall]]:
    sessions: dict[str, list[ServerCall]] = {}
    for call in stats.calls:
        sessions.setdefault(call.session, []).append(call)
    return sessions


def _check_replay(stats: ServerStats, records: list[CallRecord], seen: list[int]) -> None:
    """What the server saw is the timeline: each session's calls, streams, start and gaps."""
    sessions = _calls_by_session(stats)
    assert sorted(sessions) == ["1", "2"]
    assert [c.stream for c in sessions["1"]] == [True, False, True]
    assert [c.stream for c in sessions["2"]] == [False]
    first, second, _ = sessions["1"]
    assert second.started_s - (first.started_s + first.duration_ms / 1000) >= 0.120
    assert seen == [1, 2, 3]
    assert sorted((r.session, r.turn) for r in records) == [(0, 1), (0, 2), (0, 3), (1, 1)]
    assert all(r.ok for r in records)
    # session 2 started 60 ms after the common start (the client's clock: a first request's
    # setup delays its arrival at the server by an unknown amount)
    assert min(r.started_s for r in records if r.session == 1) >= 0.060


def test_the_threaded_gateway_replays_a_timeline() -> None:
    scenario = parse_scenario(TIMELINE)
    records: list[CallRecord] = []
    seen: list[int] = []
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, resolve_factory("baseline", Path(".")), server.base_url)
        gateway.open()
        try:
            gateway.run(on_call=records.append, on_turn=seen.append)
        finally:
            gateway.close()
        stats = server.stats()
    _check_replay(stats, records, seen)


def test_the_async_gateway_replays_a_timeline() -> None:
    scenario = parse_scenario(TIMELINE)
    records: list[CallRecord] = []
    seen: list[int] = []

    def factory(client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**client_kwargs, http_client=sdk_stack().AsyncClient())

    with MockServer(scenario.server) as server:
        opened = Gateway(scenario, factory, server.base_url)
        opened.open()
        gateway = AsyncGateway.adopt(opened)

        async def main(run: Callable[..., Any]) -> None:
            try:
                await run(on_call=records.append, on_turn=seen.append)
            finally:
                await gateway.close()

        asyncio.run(main(gateway.run))
        stats = server.stats()
    _check_replay(stats, records, seen)


def test_a_server_call_keeps_its_session_only_when_it_has_one() -> None:
    plain = ServerCall(1, 1, "/v1/chat/completions", False, 200, 0)
    named = ServerCall(2, 1, "/v1/chat/completions", True, 200, 0, session="3")
    assert "session" not in plain.to_dict()
    stats = ServerStats(calls=(plain, named))
    assert [c.get("session") for c in stats.to_dict()["calls"]] == [None, "3"]
    assert ServerStats.from_dict(stats.to_dict()).calls == (plain, named)


def _replayed(index: int) -> list[str]:
    """What session ``index`` of TIMELINE does on a fake clock starting at 10 s."""
    session = parse_scenario(TIMELINE).session
    now = [10.0]
    log: list[str] = []

    def sleep(seconds: float) -> None:
        log.append(f"sleep {seconds * 1000:.0f}")
        now[0] += seconds

    def call(step: Round, ready: Callable[[], None]) -> None:
        now[0] += 0.004  # the request client takes 4 ms to build, during the gap
        ready()
        log.append(f"call {step.turn} at {(now[0] - 10) * 1000:.0f}")
        now[0] += 0.005  # the round trip

    replay_session(
        session, index, 10.0, lambda: now[0], sleep, call, lambda t: log.append(f"turn {t}")
    )
    return log


def test_a_session_waits_its_start_and_each_gap_after_its_client_is_built() -> None:
    # gaps of 120, 10 and 0 ms after calls of 5 ms: each request leaves its gap after the end
    # of the previous call, the 4 ms of client building inside the gap
    assert _replayed(0) == [
        "sleep 0", "call 1 at 4",
        "sleep 116", "turn 1", "call 2 at 129",
        "sleep 6", "turn 2", "call 3 at 144",
        "sleep 0", "turn 3",
    ]  # fmt: skip
    # session 2 starts 60 ms in, then idles 30 ms after its only call
    assert _replayed(1) == ["sleep 56", "call 1 at 60", "sleep 30", "turn 1"]
