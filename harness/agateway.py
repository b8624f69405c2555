"""The gateway session simulator on asyncio, for factories that return ``openai.AsyncOpenAI``.

The same session model as :mod:`harness.gateway` (kept ``client_kwargs``, one shared client,
a fresh request client per round trip from a shallow copy, tool rounds, idle gaps, streams
read to the end or abandoned after the first event, request clients closed or not), with the
same pure parts (:mod:`harness.conversation`); only the waiting differs. Concurrent sessions
are tasks on one event loop that meet at an :class:`asyncio.Barrier` after each turn's gap, so
``on_turn`` sees every session at the same turn, as with threads. Clients are closed with
``await client.close()``.

The shared client is built before the loop runs (:meth:`AsyncGateway.adopt` takes over an
opened :class:`~harness.gateway.Gateway`: the factory's return type is how the worker tells
the kinds apart); request clients are built inside the loop. Every ``Exception`` a call raises
becomes a :class:`~harness.result.CallRecord`; ``CancelledError`` and other
``BaseException``\\ s propagate.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import openai

from harness.conversation import (
    Conversation,
    append_tool_result,
    call_id,
    call_record,
    request_args,
    resource_of,
    rounds,
)
from harness.factory import Factory
from harness.gateway import Gateway
from harness.result import CallRecord
from harness.scenario import Scenario

__all__ = ["AsyncGateway", "ClientKind", "client_kind"]

ClientKind = Literal["sync", "async"]


def client_kind(client: object) -> ClientKind:
    """``"async"`` for an ``openai.AsyncOpenAI`` (or any client whose ``close`` is a
    coroutine function), else ``"sync"``."""
    if isinstance(client, openai.AsyncOpenAI):
        return "async"
    return "async" if inspect.iscoroutinefunction(getattr(client, "close", None)) else "sync"


class AsyncGateway:
    """One async gateway's state: the kept kwargs (the very dict the factory saw) and the
    shared client."""

    def __init__(
        self,
        scenario: Scenario,
        factory: Factory,
        client_kwargs: dict[str, Any],
        shared: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.scenario = scenario
        self.client_kwargs = client_kwargs
        self._factory = factory
        self._shared = shared
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def adopt(cls, gateway: Gateway, **kw: Any) -> AsyncGateway:
        """Take over an opened sync :class:`Gateway` whose shared client turned out async:
        the same kept dict and shared client (the factory's ``shared=True`` call is not
        repeated); the sync gateway closes nothing afterwards."""
        shared = gateway.hand_over()
        return cls(gateway.scenario, gateway.factory, gateway.client_kwargs, shared, **kw)

    async def close(self) -> None:
        """``await`` the shared client's ``close()``, as the gateway does at shutdown."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.close()

    async def run(
        self,
        *,
        on_call: Callable[[CallRecord], None] = lambda record: None,
        on_turn: Callable[[int], None] = lambda turn: None,
    ) -> None:
        """Run every session to the end as tasks; the first failure cancels the rest."""
        count = self.scenario.session.concurrency
        barrier = asyncio.Barrier(count)

        async def after_turn(turn: int) -> None:
            # The first session through runs on_turn once; all wait until it has run.
            if await barrier.wait() == 0:
                on_turn(turn)
            await barrier.wait()

        try:
            async with asyncio.TaskGroup() as group:
                for session in range(count):
                    group.create_task(self._session(session, on_call, after_turn))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # as the threaded gateway: the first failure

    async def _session(
        self,
        session: int,
        on_call: Callable[[CallRecord], None],
        after_turn: Callable[[int], Awaitable[None]],
    ) -> None:
        spec = self.scenario.session
        t0 = self._clock()
        for step in rounds(spec):
            started = self._clock()
            failure: Exception | None = None
            built = False  # whether the factory returned this call's request client
            try:
                client = self._factory(dict(self.client_kwargs), shared=False)
                built = True
                await self._round_trip(client, step.conversation, tools=step.tools)
            except Exception as exc:  # count every failure, whatever its type
                failure = exc
            on_call(
                call_record(
                    session,
                    step,
                    t0=t0,
                    started=started,
                    ended=self._clock(),
                    failure=failure,
                    factory_raised=failure is not None and not built,
                )
            )
            if step.ends_turn:
                await self._sleep(spec.idle_between_turns_ms / 1000)
                await after_turn(step.turn)

    async def _round_trip(self, client: Any, conversation: Conversation, *, tools: bool) -> None:
        session = self.scenario.session
        abandon = session.stream and session.abandon_streams
        try:
            tool_call = await self._request(client, conversation, tools=tools, abandon=abandon)
        finally:
            if self.scenario.client.close_request_clients and not abandon:
                await client.close()
        if tools:
            append_tool_result(self.scenario, conversation, tool_call)

    async def _request(
        self, client: Any, conversation: Conversation, *, tools: bool, abandon: bool
    ) -> str:
        """Send one request; return the tool call id seen (or "" when none)."""
        resource, kwargs = request_args(self.scenario, conversation, tools=tools)
        response = await resource_of(client, resource).create(**kwargs)
        if not self.scenario.session.stream:
            return call_id(response)
        if abandon:
            # Read one event and drop the stream unclosed: the leak under study.
            return call_id(await response.__anext__())
        tool_call = ""
        async for event in response:
            tool_call = tool_call or call_id(event)
        return tool_call
