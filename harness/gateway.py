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
passed in.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from harness.errors import UsageError
from harness.factory import Factory
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
MODEL: Final = "mock-model"
_TOOL: Final = {
    "name": "lookup",
    "description": "Look a value up.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}
_CHAIN_LIMIT: Final = 10


def require_loopback_url(url: str) -> str:
    """Return ``url`` if its host is a loopback IP (127.0.0.0/8 or ::1), else UsageError.

    The gateway only ever talks to the local mock server: a scenario must never spend real
    tokens or send traffic off the machine, whatever the caller passes in.
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"refusing base_url {url!r}: the gateway only talks to a mock server on "
            "127.0.0.0/8 or ::1"
        )
    return url


def error_type(exc: BaseException) -> str:
    """``module.Qualname`` of an exception, without private submodules: ``openai.APIError``."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    public = ".".join(part for part in module.split(".") if not part.startswith("_"))
    return f"{public}.{cls.__qualname__}" if public else cls.__qualname__


def error_chain(exc: BaseException) -> tuple[str, ...]:
    """``"Type: message"`` for ``exc`` and each ``__cause__``/``__context__`` below it."""
    chain: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < _CHAIN_LIMIT:
        seen.add(id(current))
        chain.append(f"{error_type(current)}: {current}")
        current = current.__cause__ or current.__context__
    return tuple(chain)


@dataclass
class _Conversation:
    """The messages (chat) or input items (responses) of one turn, grown by tool rounds."""

    items: list[dict[str, Any]]


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
        for turn in range(1, spec.turns + 1):
            conversation = _Conversation([{"role": "user", "content": f"turn {turn}"}])
            for rnd in range(1, spec.calls_per_turn + 1):
                tools = rnd < spec.calls_per_turn
                on_call(self._call(session, turn, rnd, t0, conversation, tools=tools))
            self._sleep(spec.idle_between_turns_ms / 1000)
            after_turn(turn)

    def _call(
        self,
        session: int,
        turn: int,
        rnd: int,
        t0: float,
        conversation: _Conversation,
        *,
        tools: bool,
    ) -> CallRecord:
        started = self._clock()
        failure: Exception | None = None
        try:
            self._round_trip(conversation, tools=tools)
        except Exception as exc:  # count every failure, whatever its type
            failure = exc
        return CallRecord(
            session=session,
            turn=turn,
            round=rnd,
            ok=failure is None,
            latency_ms=(self._clock() - started) * 1000,
            started_s=started - t0,
            error_type=None if failure is None else error_type(failure),
            error_chain=() if failure is None else error_chain(failure),
        )

    def _round_trip(self, conversation: _Conversation, *, tools: bool) -> None:
        session = self.scenario.session
        abandon = session.stream and session.abandon_streams
        client = self._factory(dict(self.client_kwargs), shared=False)
        try:
            call_id = self._request(client, conversation, tools=tools, abandon=abandon)
        finally:
            if self.scenario.client.close_request_clients and not abandon:
                client.close()
        if tools:
            self._append_tool_result(conversation, call_id)

    def _request(
        self, client: Any, conversation: _Conversation, *, tools: bool, abandon: bool
    ) -> str:
        """Send one request; return the tool call id seen (or "" when none)."""
        stream = self.scenario.session.stream
        extra: dict[str, Any] = {"tool_choice": "required"} if tools else {}
        if self.scenario.server.api == "responses":
            if tools:
                extra["tools"] = [{"type": "function", **_TOOL}]
            response = client.responses.create(
                model=MODEL, input=conversation.items, stream=stream, **extra
            )
        else:
            if tools:
                extra["tools"] = [{"type": "function", "function": _TOOL}]
            response = client.chat.completions.create(
                model=MODEL, messages=conversation.items, stream=stream, **extra
            )
        if not stream:
            return _call_id(response)
        if abandon:
            # Read one event and drop the stream unclosed: the leak under study.
            return _call_id(next(iter(response)))
        call_id = ""
        for event in response:
            call_id = call_id or _call_id(event)
        return call_id

    def _append_tool_result(self, conversation: _Conversation, call_id: str) -> None:
        call_id = call_id or f"call_harness_{len(conversation.items)}"
        if self.scenario.server.api == "responses":
            conversation.items += [
                {"type": "function_call", "call_id": call_id, "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": call_id, "output": "42"},
            ]
            return
        conversation.items += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "lookup", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "42"},
        ]


def _call_id(obj: Any) -> str:
    """The first tool call id in a chat completion/chunk or a responses object/event."""
    for choice in getattr(obj, "choices", None) or ():
        part = getattr(choice, "message", None) or getattr(choice, "delta", None)
        for call in getattr(part, "tool_calls", None) or ():
            if getattr(call, "id", None):
                return str(call.id)
    item = getattr(obj, "item", None)  # responses stream event
    items = [item] if item is not None else list(getattr(obj, "output", None) or ())
    for entry in items:
        if getattr(entry, "call_id", None):
            return str(entry.call_id)
    return ""
