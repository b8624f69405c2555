"""The gateway session simulator: drives a client factory the way the real gateway did.

Theory of operation. The gateway under study keeps one ``client_kwargs`` dict for its whole
life (``api_key``, ``base_url`` and the scenario's ``client.kwargs``). It asks the factory
once for a shared client (``factory(client_kwargs, shared=True)``), which it keeps and closes
at shutdown but never uses here, and for every LLM round trip asks for a fresh request client
with a shallow copy (``factory(dict(client_kwargs), shared=False)``), uses it once and closes
it or not (``client.close_request_clients``). A bug in the factory that mutates the kept dict
therefore shows up exactly as it did in production.

A turn is ``calls_per_turn`` round trips: every round but the last asks for a tool call
(``tools`` + ``tool_choice="required"``) and appends the tool's result, like an agent's tool
loop. After each turn every session sleeps ``idle_between_turns_ms`` (also after the last
turn: the gateway idles before shutdown, and that gap is when the server reaps idle
connections), then ``on_turn(turn)`` runs once. With ``concurrency`` > 1 the sessions run in
threads that start turn 1 together and meet at a barrier after each turn's gap, so
``on_turn`` sees all sessions at the same turn, and every turn's calls start at once however
late the machine started a thread. Streams are read to the end, or with ``abandon_streams``
only to the first chunk and then dropped unclosed, with the request client left open as well.

A ``session.timeline`` (a replayed production timeline, ``harness import``) replaces the
uniform turns: each session a thread from one common start, each call a turn with its own
stream flag and gap, no barrier, every request naming its session in ``x-session-id``; how,
and when each turn's sample is taken, is :mod:`harness.timeline`'s.

Lifecycle events (``session.events``) act on the shared client once each: ``terminate``
closes it (the factory module's ``terminate_openai_client`` hook, else ``close()``), ``reload``
terminates it and builds a new one with ``factory(client_kwargs, shared=True)``, ``fallback``
builds a second provider, ``factory({**client_kwargs, "base_url": fallback_url}, shared=True)``
(a copy of the kept dict, as a gateway derives a fallback's config), and routes every later
call there: the sessions call it instead of what they hold, request clients copy its kwargs. An
``after_turn`` event runs after that turn's gap, once all sessions reached the barrier and
before the turn's ``on_turn``; a ``during_turn`` event runs in its own thread ``at_ms`` after
the first session started that turn, while the turn's calls are in flight. With
``client.calls_via: shared`` every call goes through the shared client the session took at
its start (the provider object an agent loop holds), not a fresh request client, and a
reload does not change what a running session holds. At shutdown every shared client the
gateway built is closed. A failing event (the hook or the factory raising) ends the run with
that error.

Every call yields a :class:`~harness.result.CallRecord`; every ``Exception`` a call raises,
whatever its type, is recorded with its ``__cause__``/``__context__`` chain and the session
goes on. Nothing here patches anything: factory, base URL, clock, sleep and callbacks are
passed in. What a round trip sends and records is pure and lives in :mod:`harness.conversation`,
shared with the asyncio simulator (:mod:`harness.agateway`) for ``AsyncOpenAI`` factories.
"""

from __future__ import annotations

import inspect
import threading
import time
import urllib.parse
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from harness.conversation import (
    MODEL,
    FactoryRaised,
    Round,
    append_tool_result,
    call_id,
    call_record,
    error_chain,
    error_type,
    events_after,
    events_during,
    request_args,
    resource_of,
    rounds,
)
from harness.errors import FactoryError, UsageError
from harness.factory import Factory, terminate_hook
from harness.loopback import is_loopback
from harness.result import CallRecord
from harness.schema import Event, Scenario
from harness.timeline import replay_session, run_timeline

__all__ = [
    "DUMMY_API_KEY",
    "MODEL",
    "Gateway",
    "error_chain",
    "error_type",
    "fallback_kwargs",
    "require_loopback_url",
]

DUMMY_API_KEY: Final = "sk-harness-dummy-key"  # the mock server accepts anything


def fallback_kwargs(client_kwargs: dict[str, Any], url: str) -> dict[str, Any]:
    """The fallback provider's kwargs: a copy of the kept dict with the second server's URL."""
    if not url:
        raise UsageError(
            "a fallback event needs a second mock server; run the scenario with the harness "
            "(run, regress, check), which starts one"
        )
    return {**client_kwargs, "base_url": url}


def require_loopback_url(url: str) -> str:
    """Return ``url`` if its host is a loopback IP (127.0.0.0/8 or ::1), else UsageError.

    The gateway only ever talks to the local mock server: a scenario must never spend real
    tokens or send traffic off the machine, whatever the caller passes in.
    """
    if not is_loopback(urllib.parse.urlsplit(url).hostname or ""):
        raise UsageError(
            f"refusing base_url {url!r}: the gateway only talks to a mock server on "
            "127.0.0.0/8 or ::1"
        )
    return url


class Gateway:
    """One gateway process's worth of state: the kept kwargs and the shared client."""

    def __init__(
        self,
        scenario: Scenario,
        factory: Factory,
        base_url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        fallback_url: str = "",
    ) -> None:
        self.scenario = scenario
        # The second mock server a `fallback` event routes to ("": the scenario has none).
        self.fallback_url = require_loopback_url(fallback_url) if fallback_url else ""
        self._route: tuple[dict[str, Any], Any] | None = None  # (kwargs, client) after fallback
        self.client_kwargs: dict[str, Any] = {
            "api_key": DUMMY_API_KEY,
            "base_url": require_loopback_url(base_url),
            **scenario.client.kwargs,
        }
        self._factory = factory
        self._clock = clock
        self._sleep = sleep
        self._shared: Any = None
        self._built: list[Any] = []  # every shared client built (a reload adds one)
        self._hook = terminate_hook(factory)
        self._lock = threading.Lock()  # events may run in a timer thread
        self._started: set[int] = set()  # turns whose during_turn events are scheduled
        self._timers: list[threading.Thread] = []
        self._failures: list[BaseException] = []

    @property
    def factory(self) -> Factory:
        return self._factory

    @property
    def shared(self) -> Any:
        """The shared client once :meth:`open` built it, else None."""
        return self._shared

    def hand_over(self) -> Any:
        """Give the shared client up (to :class:`~harness.agateway.AsyncGateway`), so that
        :meth:`close` no longer closes it; return it."""
        shared, self._shared = self._shared, None
        self._built.clear()
        return shared

    def open(self) -> None:
        """Build the shared client; a factory error here propagates (nothing ran yet)."""
        self._shared = self._factory(self.client_kwargs, shared=True)
        self._built = [self._shared]

    def close(self) -> None:
        """Close every shared client built, as the gateway does at shutdown."""
        built, self._built, self._shared = self._built, [], None
        for shared in built:
            shared.close()

    def fire(self, event: Event) -> None:
        """Run one lifecycle event on the shared client (see the module docstring)."""
        with self._lock:
            if event.action == "fallback":
                kwargs = fallback_kwargs(self.client_kwargs, self.fallback_url)
                self._shared = self._factory(kwargs, shared=True)
                self._built.append(self._shared)
                self._route = (kwargs, self._shared)
                return
            self._terminate(self._shared)
            if event.action == "reload":
                self._shared = self._factory(self.client_kwargs, shared=True)
                self._built.append(self._shared)

    def _terminate(self, client: Any) -> None:
        if self._hook is None:
            client.close()
            return
        outcome = self._hook(client, shared=True)
        if inspect.isawaitable(outcome):
            close = getattr(outcome, "close", None)
            if close is not None:
                close()  # never awaited: say so instead of warning at GC
            raise FactoryError(
                "terminate_openai_client returned an awaitable for a sync client; "
                "an async hook goes with an AsyncOpenAI factory"
            )

    def run(
        self,
        *,
        on_call: Callable[[CallRecord], None] = lambda record: None,
        on_turn: Callable[[int], None] = lambda turn: None,
    ) -> None:
        """Run every session to the end; ``on_call`` may be called from several threads."""
        try:
            self._run(on_call, on_turn)
        finally:
            for timer in self._timers:
                timer.join()
        if self._failures:
            raise self._failures[0]

    def _run(self, on_call: Callable[[CallRecord], None], on_turn: Callable[[int], None]) -> None:
        spec = self.scenario.session

        def turn_done(turn: int) -> None:
            for event in events_after(spec, turn):
                self.fire(event)
            on_turn(turn)

        if spec.timeline:
            run_timeline(spec, self._clock, partial(self._session, on_call=on_call), turn_done)
            return
        count = spec.concurrency
        if count == 1:
            self._session(0, turn_done, self._clock(), on_call=on_call)
            return
        barrier = threading.Barrier(count)
        failures: list[BaseException] = []

        def after_turn(turn: int) -> None:
            # The barrier's action runs once, in one thread, when all sessions arrive.
            if barrier.wait() == 0:
                turn_done(turn)
            barrier.wait()

        def target(session: int) -> None:
            try:
                barrier.wait()  # start together, as the sessions after each turn do
                self._session(session, after_turn, self._clock(), on_call=on_call)
            except threading.BrokenBarrierError:
                pass  # another session failed; its error is the one reported
            except BaseException as exc:
                failures.append(exc)
                barrier.abort()

        threads = [
            threading.Thread(target=target, args=(i,), name=f"session-{i}") for i in range(count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    def _session(
        self,
        session: int,
        after_turn: Callable[[int], None],
        t0: float,
        *,
        on_call: Callable[[CallRecord], None],
    ) -> None:
        spec = self.scenario.session
        held = self._shared  # what this session keeps calling, whatever a reload builds
        if spec.timeline:

            def call(step: Round, ready: Callable[[], None]) -> None:
                on_call(self._call(session, step, t0, held, ready))

            replay_session(spec, session, t0, self._clock, self._sleep, call, after_turn)
            return
        for step in rounds(spec, session):
            if step.rnd == 1:
                self._schedule(step.turn)
            on_call(self._call(session, step, t0, held))
            if step.ends_turn:
                self._sleep(step.idle_ms / 1000)
                after_turn(step.turn)

    def _schedule(self, turn: int) -> None:
        """Start ``turn``'s during_turn events once, when the first session begins the turn."""
        events = events_during(self.scenario.session, turn)
        with self._lock:
            if not events or turn in self._started:
                return
            self._started.add(turn)
        for event in events:
            timer = threading.Thread(target=self._fire_at, args=(event,), name=event.label)
            self._timers.append(timer)
            timer.start()

    def _fire_at(self, event: Event) -> None:
        try:
            self._sleep(event.at_ms / 1000)
            self.fire(event)
        except BaseException as exc:  # handed to run(), which raises it
            self._failures.append(exc)

    def _call(
        self,
        session: int,
        step: Round,
        t0: float,
        held: Any,
        ready: Callable[[], None] | None = None,
    ) -> CallRecord:
        """One round trip, recorded. ``ready`` (a timeline's) returns when the request may
        leave, once the request client is built; the call counts as started then."""
        started = self._clock()

        def begin() -> None:
            nonlocal started
            if ready is not None:
                ready()
                started = self._clock()

        failure: Exception | None = None
        try:
            self._round_trip(session, step, held=held, begin=begin)
        except Exception as exc:  # count every failure, whatever its type
            failure = exc
        return call_record(
            session,
            step,
            t0=t0,
            started=started,
            ended=self._clock(),
            failure=failure,
        )

    def _round_trip(
        self, session: int, step: Round, *, held: Any, begin: Callable[[], None]
    ) -> None:
        abandon = step.stream and self.scenario.session.abandon_streams
        kwargs, held = self._route or (self.client_kwargs, held)
        if self.scenario.client.calls_via == "shared":
            begin()
            tool_call = self._request(held, session, step, abandon=abandon)
        else:
            try:
                client = self._factory(dict(kwargs), shared=False)
            except Exception as exc:
                begin()  # the call fails when it would have been sent
                raise FactoryRaised(exc) from exc
            begin()
            try:
                tool_call = self._request(client, session, step, abandon=abandon)
            finally:
                if self.scenario.client.close_request_clients and not abandon:
                    client.close()
        if step.tools:
            append_tool_result(self.scenario, step.conversation, tool_call)

    def _request(self, client: Any, session: int, step: Round, *, abandon: bool) -> str:
        """Send one request; return the tool call id seen (or "" when none)."""
        resource, kwargs = request_args(self.scenario, step, session=session)
        response = resource_of(client, resource).create(**kwargs)
        if not step.stream:
            return call_id(response)
        if abandon:
            # Read one event and drop the stream unclosed: the leak under study.
            return call_id(next(iter(response)))
        tool_call = ""
        for event in response:
            tool_call = tool_call or call_id(event)
        return tool_call
