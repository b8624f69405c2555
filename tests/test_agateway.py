"""The async gateway simulator: the sync session model on asyncio, against the mock server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from harness.agateway import AsyncGateway, client_kind
from harness.gateway import Gateway
from harness.mockserver import MockServer
from harness.result import CallRecord
from harness.scenario import Scenario, parse_scenario
from harness.variants._http import sdk_stack


class Capture:
    """Factories (sync and async) that record kwargs, shared flags, bodies and closes."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], bool]] = []
        self.bodies: list[dict[str, Any]] = []
        self.closed = 0
        self.clients: list[openai.AsyncOpenAI] = []

    def sync(self, client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
        self.calls.append((client_kwargs, shared))
        http = sdk_stack().Client(event_hooks={"request": [self._body]})
        return openai.OpenAI(**client_kwargs, http_client=http)

    def asynchronous(self, client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
        self.calls.append((client_kwargs, shared))
        capture = self

        class Counted(openai.AsyncOpenAI):
            async def close(self) -> None:
                capture.closed += 1
                await super().close()

        async def body(request: Any) -> None:
            self._body(request)

        http = sdk_stack().AsyncClient(event_hooks={"request": [body]})
        client = Counted(**client_kwargs, http_client=http)
        self.clients.append(client)
        return client

    async def close_all(self) -> int:
        """Close every client still open (without counting); return the count of closes."""
        closed = self.closed
        for client in self.clients:
            await openai.AsyncOpenAI.close(client)
        return closed

    def _body(self, request: Any) -> None:
        self.bodies.append(json.loads(request.content))


def _scenario(session: str, *, api: str = "chat.completions", close: bool = True) -> Scenario:
    return parse_scenario(
        f"version: 1\nserver: {{api: {api}}}\n"
        f"client: {{kwargs: {{timeout: 10}}, close_request_clients: {str(close).lower()}}}\n"
        f"session: {session}\n"
    )


def _run_async(
    scenario: Scenario,
    factory: Callable[..., Any],
    on_turn: Callable[[int], None] = lambda turn: None,
    records: list[CallRecord] | None = None,
) -> tuple[list[CallRecord], AsyncGateway]:
    records = [] if records is None else records
    capture = getattr(factory, "__self__", None)
    with MockServer(scenario.server) as server:
        opened = Gateway(scenario, factory, server.base_url)
        opened.open()
        gateway = AsyncGateway.adopt(opened)

        async def main() -> None:
            try:
                await gateway.run(on_call=records.append, on_turn=on_turn)
            finally:
                await gateway.close()
                if isinstance(capture, Capture):  # what the scenario left open, closed now
                    capture.closed = await capture.close_all()

        asyncio.run(main())
    return records, gateway


def _run_sync(scenario: Scenario, factory: Callable[..., Any]) -> list[CallRecord]:
    records: list[CallRecord] = []
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, factory, server.base_url)
        gateway.open()
        try:
            gateway.run(on_call=records.append)
        finally:
            gateway.close()
    return records


def test_kept_kwargs_shared_once_then_copies_closed_with_await() -> None:
    capture = Capture()
    records, gateway = _run_async(_scenario("{turns: 3}"), capture.asynchronous)
    assert [shared for _, shared in capture.calls] == [True, False, False, False]
    kept = capture.calls[0][0]
    assert kept is gateway.client_kwargs
    assert all(kwargs is not kept and kwargs == kept for kwargs, _ in capture.calls[1:])
    assert capture.closed == 4  # three request clients, then the shared one
    assert [(r.turn, r.round, r.ok) for r in records] == [(1, 1, True), (2, 1, True), (3, 1, True)]


def test_request_clients_left_open_when_the_scenario_says_so() -> None:
    capture = Capture()
    _run_async(_scenario("{turns: 2}", close=False), capture.asynchronous)
    assert capture.closed == 1  # only the shared client, at shutdown


@pytest.mark.parametrize("api", ["chat.completions", "responses"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_same_requests_as_the_sync_gateway(api: str, stream: bool) -> None:
    scenario = _scenario(f"{{turns: 2, calls_per_turn: 3, stream: {str(stream).lower()}}}", api=api)
    sync, asynchronous = Capture(), Capture()
    sync_records = _run_sync(scenario, sync.sync)
    async_records, _ = _run_async(scenario, asynchronous.asynchronous)
    assert len(sync.bodies) == 6
    assert asynchronous.bodies == sync.bodies
    shape = [(r.session, r.turn, r.round, r.ok) for r in sync_records]
    assert [(r.session, r.turn, r.round, r.ok) for r in async_records] == shape


def test_abandoned_streams_read_one_event_and_close_nothing() -> None:
    capture = Capture()
    records, _ = _run_async(
        _scenario("{turns: 2, stream: true, abandon_streams: true}"), capture.asynchronous
    )
    assert [r.ok for r in records] == [True, True]
    assert capture.closed == 1  # the abandoned request clients stay open


def test_every_exception_is_recorded_with_its_chain() -> None:
    made = 0

    def factory(client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
        nonlocal made
        made += 1
        if made == 3:  # the second request client
            try:
                raise KeyError("inner")
            except KeyError as exc:
                raise ValueError("outer") from exc
        return openai.AsyncOpenAI(**client_kwargs)

    records, _ = _run_async(_scenario("{turns: 3}"), factory)
    assert [r.ok for r in records] == [True, False, True]
    assert records[1].error_type == "ValueError"
    assert records[1].error_chain == ("ValueError: outer", "KeyError: 'inner'")
    assert [r.factory_raised for r in records] == [False, True, False]


def test_concurrent_sessions_meet_after_each_turn() -> None:
    seen: list[tuple[int, list[int]]] = []
    records: list[CallRecord] = []
    capture = Capture()

    def on_turn(turn: int) -> None:
        seen.append((turn, sorted(r.session for r in records if r.turn == turn)))

    _run_async(_scenario("{turns: 3, concurrency: 4}"), capture.asynchronous, on_turn, records)
    assert seen == [(turn, [0, 1, 2, 3]) for turn in (1, 2, 3)]


def test_a_failing_turn_callback_stops_all_sessions() -> None:
    def on_turn(turn: int) -> None:
        raise LookupError(f"turn {turn}")

    capture = Capture()
    with pytest.raises(LookupError, match="turn 1"):
        _run_async(_scenario("{turns: 3, concurrency: 3}"), capture.asynchronous, on_turn)
    assert capture.closed == 4  # each session's request client, then the shared one


def test_adopt_takes_the_shared_client_over() -> None:
    scenario = _scenario("{turns: 1}")
    capture = Capture()
    opened = Gateway(scenario, capture.asynchronous, "http://127.0.0.1:9/v1")
    opened.open()
    shared = opened.shared
    gateway = AsyncGateway.adopt(opened)
    opened.close()  # closes nothing now: the async gateway owns the client
    assert (opened.shared, capture.closed) == (None, 0)
    asyncio.run(gateway.close())
    assert capture.closed == 1
    assert shared.is_closed()


def test_client_kind() -> None:
    kwargs = {"api_key": "sk-x", "base_url": "http://127.0.0.1:9/v1"}
    sync, asynchronous = openai.OpenAI(**kwargs), openai.AsyncOpenAI(**kwargs)

    class Duck:
        async def close(self) -> None:
            return None

    try:
        assert [client_kind(c) for c in (sync, asynchronous, Duck(), object())] == [
            "sync",
            "async",
            "async",
            "sync",
        ]
    finally:
        sync.close()
        asyncio.run(asynchronous.close())
