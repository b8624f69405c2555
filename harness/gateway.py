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

Every call yields a :class:`~harness.result.CallRecord`; every ``Exception`` a call raises,
whatever its type, is recorded with its ``__cause__``/``__context__`` chain and the session
goes on. Nothing here patches anything: factory, base URL, clock, sleep and callbacks are
passed in. What a round trip sends and records is pure and lives in :mod:`harness.conversation`,
shared with the asyncio simulator (:mod:`harness.agateway`) for ``AsyncOpenAI`` factories.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

from harness.conversation import (
    MODEL,
    Conversation,
    Round,
    append_tool_result,
    call_id,
    call_record,
    error_chain,
    error_type,
    request_args,
    resource_of,
    rounds,
)
from harness.errors import UsageError
from harness.factory import Factory
from harness.loopback import is_loopback
from harness.result import CallRecord
from harness.scenario import Scenario

__all__ = [
    "DUMMY_API_KEY",
    "MODEL",
    "Gateway",
    "error_chain",
    "error_type",
    "require_loopback_url",
]

DUMMY_API_KEY: Final = "sk-harness-dummy-key"  # the mock server accepts anything


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
    ) -> None:
        self.scenario = scenario
        self.client_kwargs: dict[str, Any] = {
            "api_key": DUMMY_API_KEY,
            "base_url": require_loopback_url(base_url),
            **scenario.client.kwargs,
        }
        self._factory = factory
        self._clock = clock
        self._sleep = sleep
        self._shared: Any = None

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
        return shared

    def open(self) -> None:
        """Build the shared client; a factory error here propagates (nothing ran yet)."""
        self._shared = self._factory(self.client_kwargs, shared=True)

    def close(self) -> None:
        """Close the shared client, as the gateway does at shutdown."""
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()

    def run(
        self,
        *,
        on_call: Callable[[CallRecord], None] = lambda record: None,
        on_turn: Callable[[int], None] = lambda turn: None,
    ) -> None:
        """Run every session to the end; ``on_call`` may be called from several threads."""
        count = self.scenario.session.concurrency
        if count == 1:
            self._session(0, on_call, on_turn)
            return
        barrier = threading.Barrier(count)
        failures: list[BaseException] = []

        def after_turn(turn: int) -> None:
            # The barrier's action runs once, in one thread, when all sessions arrive.
            if barrier.wait() == 0:
                on_turn(turn)
            barrier.wait()

        def target(session: int) -> None:
            try:
                barrier.wait()  # start together, as the sessions after each turn do
                self._session(session, on_call, after_turn)
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
        self, session: int, on_call: Callable[[CallRecord], None], after_turn: Callable[[int], None]
    ) -> None:
        spec = self.scenario.session
        t0 = self._clock()
        for step in rounds(spec):
            on_call(self._call(session, step, t0))
            if step.ends_turn:
                self._sleep(spec.idle_between_turns_ms / 1000)
                after_turn(step.turn)

    def _call(self, session: int, step: Round, t0: float) -> CallRecord:
        started = self._clock()
        failure: Exception | None = None
        built = False  # whether the factory returned this call's request client
        try:
            client = self._factory(dict(self.client_kwargs), shared=False)
            built = True
            self._round_trip(client, step.conversation, tools=step.tools)
        except Exception as exc:  # count every failure, whatever its type
            failure = exc
        return call_record(
            session,
            step,
            t0=t0,
            started=started,
            ended=self._clock(),
            failure=failure,
            factory_raised=failure is not None and not built,
        )

    def _round_trip(self, client: Any, conversation: Conversation, *, tools: bool) -> None:
        session = self.scenario.session
        abandon = session.stream and session.abandon_streams
        try:
            tool_call = self._request(client, conversation, tools=tools, abandon=abandon)
        finally:
            if self.scenario.client.close_request_clients and not abandon:
                client.close()
        if tools:
            append_tool_result(self.scenario, conversation, tool_call)

    def _request(
        self, client: Any, conversation: Conversation, *, tools: bool, abandon: bool
    ) -> str:
        """Send one request; return the tool call id seen (or "" when none)."""
        resource, kwargs = request_args(self.scenario, conversation, tools=tools)
        response = resource_of(client, resource).create(**kwargs)
        if not self.scenario.session.stream:
            return call_id(response)
        if abandon:
            # Read one event and drop the stream unclosed: the leak under study.
            return call_id(next(iter(response)))
        tool_call = ""
        for event in response:
            tool_call = tool_call or call_id(event)
        return tool_call
