"""The gateway session simulator on asyncio, for factories that return ``openai.AsyncOpenAI``.

The same session model as :mod:`harness.gateway` (kept ``client_kwargs``, one shared client,
a fresh request client per round trip from a shallow copy, tool rounds, idle gaps, streams
read to the end or abandoned after the first event, request clients closed or not), with the
same pure parts (:mod:`harness.conversation`); only the waiting differs. Concurrent sessions
are tasks on one event loop that meet at an :class:`asyncio.Barrier` after each turn's gap, so
``on_turn`` sees every session at the same turn, as with threads. Clients are closed with
``await client.close()``. A ``session.timeline`` runs its sessions as tasks with no barrier,
each from one common start, as :mod:`harness.gateway` describes; its turns' samples run in
order in a worker thread (``asyncio.to_thread``), so the loop and the sessions go on.

Lifecycle events (``session.events``) and ``client.calls_via: shared`` behave as in
:mod:`harness.gateway`: an ``after_turn`` event runs in the barrier's first session before
``on_turn``, a ``during_turn`` event is a task started by the first session to begin that
turn, sleeping ``at_ms`` and then acting while the turn's calls are in flight. A
``terminate_openai_client`` hook may be sync or async (its result is awaited when it is
awaitable); without one the gateway awaits ``client.close()``.

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
    FactoryRaised,
    Round,
    TimelineTurns,
    append_tool_result,
    call_id,
    call_record,
    events_after,
    events_during,
    request_args,
    resource_of,
    rounds,
    start_ms,
)
from harness.factory import Factory, terminate_hook
from harness.gateway import Gateway, fallback_kwargs
from harness.result import CallRecord
from harness.schema import Event, Scenario

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
        fallback_url: str = "",
    ) -> None:
        self.scenario = scenario
        self.client_kwargs = client_kwargs
        self.fallback_url = fallback_url  # checked by the Gateway it was adopted from
        self._route: tuple[dict[str, Any], Any] | None = None  # (kwargs, client) after fallback
        self._factory = factory
        self._shared = shared
        self._clock = clock
        self._sleep = sleep
        self._built: list[Any] = [shared]  # every shared client built (a reload adds one)
        self._hook = terminate_hook(factory)
        self._started: set[int] = set()  # turns whose during_turn events are scheduled
        self._group: asyncio.TaskGroup | None = None

    @classmethod
    def adopt(cls, gateway: Gateway, **kw: Any) -> AsyncGateway:
        """Take over an opened sync :class:`Gateway` whose shared client turned out async:
        the same kept dict and shared client (the factory's ``shared=True`` call is not
        repeated); the sync gateway closes nothing afterwards."""
        shared = gateway.hand_over()
        kw.setdefault("fallback_url", gateway.fallback_url)
        return cls(gateway.scenario, gateway.factory, gateway.client_kwargs, shared, **kw)

    async def close(self) -> None:
        """``await`` each shared client's ``close()``, as the gateway does at shutdown."""
        built, self._built, self._shared = self._built, [], None
        for shared in built:
            if shared is not None:
                await shared.close()

    async def fire(self, event: Event) -> None:
        """Run one lifecycle event on the shared client (see :mod:`harness.gateway`)."""
        if event.action == "fallback":
            kwargs = fallback_kwargs(self.client_kwargs, self.fallback_url)
            self._shared = self._factory(kwargs, shared=True)
            self._built.append(self._shared)
            self._route = (kwargs, self._shared)
            return
        client = self._shared
        if self._hook is None:
            await client.close()
        else:
            outcome = self._hook(client, shared=True)
            if inspect.isawaitable(outcome):
                await outcome
        if event.action == "reload":
            self._shared = self._factory(self.client_kwargs, shared=True)
            self._built.append(self._shared)

    async def run(
        self,
        *,
        on_call: Callable[[CallRecord], None] = lambda record: None,
        on_turn: Callable[[int], None] = lambda turn: None,
    ) -> None:
        """Run every session to the end as tasks; the first failure cancels the rest."""
        spec = self.scenario.session
        barrier = asyncio.Barrier(spec.concurrency)
        turns = TimelineTurns(spec)

        due: asyncio.Queue[int] = asyncio.Queue()

        async def after_turn(session: int, turn: int) -> None:
            if spec.timeline:  # no barrier, and samples off the loop: sessions keep their gaps
                for done in turns.finished(session, turn, spec):
                    due.put_nowait(done)
                return
            # The first session through runs the events and on_turn once; all wait for it.
            if await barrier.wait() == 0:
                for event in events_after(spec, turn):
                    await self.fire(event)
                on_turn(turn)
            await barrier.wait()

        async def sampler() -> None:
            while turn := await due.get():  # 0: the sessions are over
                await asyncio.to_thread(on_turn, turn)

        t0 = self._clock() if spec.timeline else 0.0  # a timeline's sessions start together
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                samples = group.create_task(sampler()) if spec.timeline else None
                sessions = [
                    group.create_task(self._session(session, on_call, after_turn, t0))
                    for session in range(spec.concurrency)
                ]
                if samples is not None:
                    await asyncio.gather(*sessions)
                    due.put_nowait(0)
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # as the threaded gateway: the first failure
        finally:
            self._group = None

    def _schedule(self, turn: int) -> None:
        """Start ``turn``'s during_turn events once, when the first session begins the turn."""
        events = events_during(self.scenario.session, turn)
        if not events or turn in self._started or self._group is None:
            return
        self._started.add(turn)
        for event in events:
            self._group.create_task(self._fire_at(event), name=event.label)

    async def _fire_at(self, event: Event) -> None:
        await self._sleep(event.at_ms / 1000)
        await self.fire(event)

    async def _session(
        self,
        session: int,
        on_call: Callable[[CallRecord], None],
        after_turn: Callable[[int, int], Awaitable[None]],
        t0: float,
    ) -> None:
        spec = self.scenario.session
        held = self._shared  # what this session keeps calling, whatever a reload builds
        if spec.timeline:
            await self._replay(session, on_call, after_turn, t0, held)
            return
        t0 = self._clock()
        for step in rounds(spec, session):
            if step.rnd == 1:
                self._schedule(step.turn)
            on_call(await self._call(session, step, t0, held))
            if step.ends_turn:
                await self._sleep(step.idle_ms / 1000)
                await after_turn(session, step.turn)

    async def _replay(
        self,
        session: int,
        on_call: Callable[[CallRecord], None],
        after_turn: Callable[[int, int], Awaitable[None]],
        t0: float,
        held: Any,
    ) -> None:
        """A timeline session, as :func:`harness.timeline.replay_session` runs one on threads:
        each request client is built while the previous call's gap runs."""
        spec = self.scenario.session
        due, gap_of = t0 + start_ms(spec, session) / 1000, 0  # when, and whose gap (0: start)

        async def ready() -> None:
            await self._sleep(max(0.0, due - self._clock()))
            if gap_of:
                await after_turn(session, gap_of)

        for step in rounds(spec, session):
            on_call(await self._call(session, step, t0, held, ready))
            due, gap_of = self._clock() + step.idle_ms / 1000, step.turn
        await ready()

    async def _call(
        self,
        session: int,
        step: Round,
        t0: float,
        held: Any,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> CallRecord:
        """One round trip, recorded; ``ready`` as in :meth:`harness.gateway.Gateway._call`."""
        started = self._clock()

        async def begin() -> None:
            nonlocal started
            if ready is not None:
                await ready()
                started = self._clock()

        failure: Exception | None = None
        try:
            await self._round_trip(session, step, held=held, begin=begin)
        except Exception as exc:  # count every failure, whatever its type
            failure = exc
        return call_record(
            session, step, t0=t0, started=started, ended=self._clock(), failure=failure
        )

    async def _round_trip(
        self, session: int, step: Round, *, held: Any, begin: Callable[[], Awaitable[None]]
    ) -> None:
        abandon = step.stream and self.scenario.session.abandon_streams
        kwargs, held = self._route or (self.client_kwargs, held)
        if self.scenario.client.calls_via == "shared":
            await begin()
            tool_call = await self._request(held, session, step, abandon=abandon)
        else:
            try:
                client = self._factory(dict(kwargs), shared=False)
            except Exception as exc:
                await begin()  # the call fails when it would have been sent
                raise FactoryRaised(exc) from exc
            await begin()
            try:
                tool_call = await self._request(client, session, step, abandon=abandon)
            finally:
                if self.scenario.client.close_request_clients and not abandon:
                    await client.close()
        if step.tools:
            append_tool_result(self.scenario, step.conversation, tool_call)

    async def _request(self, client: Any, session: int, step: Round, *, abandon: bool) -> str:
        """Send one request; return the tool call id seen (or "" when none)."""
        resource, kwargs = request_args(self.scenario, step, session=session)
        response = await resource_of(client, resource).create(**kwargs)
        if not step.stream:
            return call_id(response)
        if abandon:
            # Read one event and drop the stream unclosed: the leak under study.
            return call_id(await response.__anext__())
        tool_call = ""
        async for event in response:
            tool_call = tool_call or call_id(event)
        return tool_call
