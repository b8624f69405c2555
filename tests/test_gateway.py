"""Gateway simulator: how it calls the factory, shapes turns and records every call."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from harness.errors import UsageError
from harness.factory import resolve_factory
from harness.gateway import (
    DUMMY_API_KEY,
    Gateway,
    error_chain,
    error_type,
    require_loopback_url,
)
from harness.mockserver import MockServer
from harness.result import CallRecord
from harness.scenario import Scenario, parse_scenario
from harness.variants._http import sdk_stack

# Every call goes through the installed SDK's client, errors and cause chains.
pytestmark = pytest.mark.sdk

baseline = resolve_factory("baseline", Path("."))


class Recorder:
    """A factory that records its arguments and the request bodies, and counts closes."""

    def __init__(self, fail_on: frozenset[int] = frozenset()) -> None:
        self.calls: list[tuple[dict[str, Any], dict[str, Any], bool]] = []
        self.bodies: list[dict[str, Any]] = []
        self.closed: list[int] = []
        self.clients: list[openai.OpenAI] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self, client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
        with self._lock:
            self.calls.append((client_kwargs, dict(client_kwargs), shared))
            number = len(self.calls)
        if number in self.fail_on:
            try:
                raise KeyError("inner")
            except KeyError as exc:
                raise ValueError("outer") from exc
        recorder = self

        class Counted(openai.OpenAI):
            def close(self) -> None:
                recorder.closed.append(number)
                super().close()

        http = sdk_stack().Client(event_hooks={"request": [self._body]})
        client = Counted(**client_kwargs, http_client=http)
        self.clients.append(client)
        return client

    def _body(self, request: Any) -> None:
        with self._lock:
            self.bodies.append(json.loads(request.read()))

    def close_all(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    made = Recorder()
    yield made
    made.close_all()


def _scenario(
    session: str, client: str = "close_request_clients: true", server: str = "{}"
) -> Scenario:
    return parse_scenario(
        f"version: 1\nserver: {server}\nclient: {{kwargs: {{timeout: 10}}, {client}}}\n"
        f"session: {session}\n"
    )


def _run(scenario: Scenario, factory: Any, **kw: Any) -> list[CallRecord]:
    records: list[CallRecord] = []
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, factory, server.base_url, **kw.pop("gateway", {}))
        gateway.open()
        try:
            gateway.run(on_call=records.append, **kw)
        finally:
            gateway.close()
    return records


def test_kept_kwargs_shared_once_then_copies(recorder: Recorder) -> None:
    scenario = _scenario("{turns: 3}")
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, recorder, server.base_url)
        assert gateway.client_kwargs == {
            "api_key": DUMMY_API_KEY,
            "base_url": server.base_url,
            "timeout": 10.0,
        }
        gateway.open()
        gateway.run()
        gateway.close()
        kept = gateway.client_kwargs
    assert [shared for _, _, shared in recorder.calls] == [True, False, False, False]
    assert recorder.calls[0][0] is kept
    assert all(kwargs is not kept and seen == kept for kwargs, seen, _ in recorder.calls[1:])
    # Every request client closed after its call, then the shared one at shutdown.
    assert recorder.closed == [2, 3, 4, 1]


def test_request_clients_left_open_when_the_scenario_says_so(recorder: Recorder) -> None:
    _run(_scenario("{turns: 3}", "close_request_clients: false"), recorder)
    assert recorder.closed == [1]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_rounds_chat(recorder: Recorder, stream: bool) -> None:
    records = _run(
        _scenario(f"{{turns: 2, calls_per_turn: 3, stream: {str(stream).lower()}}}"), recorder
    )
    assert [(r.session, r.turn, r.round, r.ok) for r in records] == [
        (0, turn, rnd, True) for turn in (1, 2) for rnd in (1, 2, 3)
    ]
    first, second, third = recorder.bodies[:3]
    assert (first["tool_choice"], first["tools"][0]["function"]["name"]) == ("required", "lookup")
    assert [m["role"] for m in first["messages"]] == ["user"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert [m["role"] for m in third["messages"]] == ["user"] + ["assistant", "tool"] * 2
    assert "tools" not in third and "tool_choice" not in third
    call_id = second["messages"][1]["tool_calls"][0]["id"]
    assert second["messages"][2]["tool_call_id"] == call_id
    assert call_id.startswith("call_") and not call_id.startswith("call_harness_")
    assert recorder.bodies[3]["messages"] == [{"role": "user", "content": "turn 2"}]
    assert all(body["stream"] is stream for body in recorder.bodies)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_rounds_responses(recorder: Recorder, stream: bool) -> None:
    records = _run(
        _scenario(
            f"{{turns: 1, calls_per_turn: 2, stream: {str(stream).lower()}}}",
            server="{api: responses}",
        ),
        recorder,
    )
    assert [r.ok for r in records] == [True, True]
    first, second = recorder.bodies
    assert (first["tool_choice"], first["tools"][0]["name"]) == ("required", "lookup")
    kinds = [item.get("type", item.get("role")) for item in second["input"]]
    assert kinds == ["user", "function_call", "function_call_output"]
    assert second["input"][1]["call_id"] == second["input"][2]["call_id"]
    assert not second["input"][1]["call_id"].startswith("call_harness_")


def test_every_exception_is_recorded_with_its_chain() -> None:
    factory = Recorder(fail_on=frozenset({3}))
    try:
        records = _run(_scenario("{turns: 3}"), factory)
    finally:
        factory.close_all()
    assert [r.ok for r in records] == [True, False, True]
    assert records[1].error_type == "ValueError"
    assert records[1].error_chain == ("ValueError: outer", "KeyError: 'inner'")
    assert [r.factory_raised for r in records] == [False, True, False]


def test_a_failed_request_is_told_from_a_factory_that_raised() -> None:
    made = 0

    def factory(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
        nonlocal made
        made += 1
        if made == 2:
            raise LookupError("no client today")
        http = sdk_stack().Client()
        if made == 3:  # a client, but one whose request fails
            http.close()
        return openai.OpenAI(**{**client_kwargs, "max_retries": 0}, http_client=http)

    records = _run(_scenario("{turns: 3}"), factory)
    assert [(r.ok, r.error_type, r.factory_raised) for r in records] == [
        (False, "LookupError", True),
        (False, records[1].error_type, False),
        (True, None, False),
    ]
    assert records[1].error_type in ("RuntimeError", "openai.APIConnectionError")


def test_clock_and_sleep_are_passed_in(recorder: Recorder) -> None:
    ticks = itertools.count()
    slept: list[float] = []
    records = _run(
        _scenario("{turns: 2, calls_per_turn: 2, idle_between_turns_ms: 250}"),
        recorder,
        gateway={"clock": lambda: float(next(ticks)), "sleep": slept.append},
    )
    assert slept == [0.25, 0.25]
    # t0 = 0; each call reads the clock at its start and end.
    assert [(r.started_s, r.latency_ms) for r in records] == [
        (1.0, 1000.0),
        (3.0, 1000.0),
        (5.0, 1000.0),
        (7.0, 1000.0),
    ]


def test_concurrent_sessions_meet_after_each_turn(recorder: Recorder) -> None:
    records: list[CallRecord] = []
    seen: list[tuple[int, int]] = []

    def on_turn(turn: int) -> None:
        seen.append((turn, sum(1 for r in list(records) if r.turn == turn)))

    scenario = _scenario("{turns: 3, calls_per_turn: 2, concurrency: 3}")
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, recorder, server.base_url)
        gateway.open()
        gateway.run(on_call=records.append, on_turn=on_turn)
        gateway.close()
    assert seen == [(1, 6), (2, 6), (3, 6)]
    assert sorted((r.session, r.turn, r.round) for r in records) == [
        (s, t, r) for s in range(3) for t in (1, 2, 3) for r in (1, 2)
    ]
    assert all(r.ok for r in records)
    # One shared dict for all sessions: the factory saw it once with shared=True.
    assert [shared for _, _, shared in recorder.calls].count(True) == 1


def test_a_failing_turn_callback_stops_all_sessions(recorder: Recorder) -> None:
    def on_turn(turn: int) -> None:
        raise OSError(f"probe failed at turn {turn}")

    with pytest.raises(OSError, match="probe failed at turn 1"):
        _run(_scenario("{turns: 3, concurrency: 2}"), recorder, on_turn=on_turn)
    assert len(recorder.calls) == 3  # the shared client and one call per session


def test_error_type_names() -> None:
    assert error_type(RuntimeError("x")) == "RuntimeError"
    request = sdk_stack().Request("POST", "http://127.0.0.1/v1")
    assert error_type(openai.APIConnectionError(request=request)) == "openai.APIConnectionError"
    assert error_type(sdk_stack().PoolTimeout("")) == f"{sdk_stack().__name__}.PoolTimeout"


def test_error_chain_follows_cause_and_context_and_stops_on_cycles() -> None:
    try:
        try:
            raise OSError("bottom")
        except OSError:
            raise RuntimeError("top")  # noqa: B904 - __context__ on purpose
    except RuntimeError as exc:
        top = exc
    assert error_chain(top) == ("RuntimeError: top", "OSError: bottom")
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert error_chain(first) == ("ValueError: a", "ValueError: b")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "http://10.0.0.5:8080/v1",
        "http://localhost:8080/v1",
        "http://[2001:db8::1]:80/v1",
        "not a url",
    ],
)
def test_gateway_refuses_a_base_url_off_loopback(url: str) -> None:
    scenario = parse_scenario("version: 1\n")
    with pytest.raises(UsageError, match=r"only talks to a mock server on 127\.0\.0\.0/8 or ::1"):
        Gateway(scenario, lambda kwargs, *, shared: None, url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/v1", "http://127.8.9.10/v1", "http://[::1]:9/v1"]
)
def test_require_loopback_url_accepts_loopback(url: str) -> None:
    assert require_loopback_url(url) == url
