"""The pure parts of the gateway's session model, shared by the sync and async simulators.

What a round trip sends (:func:`request_args`), how a tool round grows the conversation
(:func:`append_tool_result`), which tool call id a response carries (:func:`call_id`), how
a finished or failed call becomes a :class:`~harness.result.CallRecord` (:func:`call_record`)
and which lifecycle events run when (:func:`events_after`, :func:`events_during`).
Nothing here does I/O: :mod:`harness.gateway` (threads) and :mod:`harness.agateway` (asyncio)
drive the same model, so the two can differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from harness.result import CallRecord
from harness.schema import Event, Scenario, SessionSpec

__all__ = [
    "MODEL",
    "SESSION_HEADER",
    "Conversation",
    "FactoryRaised",
    "Round",
    "TimelineTurns",
    "append_tool_result",
    "call_id",
    "call_record",
    "error_chain",
    "error_type",
    "events_after",
    "events_during",
    "request_args",
    "resource_of",
    "rounds",
    "start_ms",
]

MODEL: Final = "mock-model"
SESSION_HEADER: Final = "x-session-id"
_TOOL: Final = {
    "name": "lookup",
    "description": "Look a value up.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}
_CHAIN_LIMIT: Final = 10


class FactoryRaised(Exception):
    """The factory raised building a request client: the code under test failing, told apart
    from a failed request so the verdict can name it (``CallRecord.factory_raised``)."""

    def __init__(self, failure: Exception) -> None:
        super().__init__(failure)
        self.failure = failure


@dataclass
class Conversation:
    """The messages (chat) or input items (responses) of one turn, grown by tool rounds."""

    items: list[dict[str, Any]]

    @classmethod
    def for_turn(cls, turn: int) -> Conversation:
        return cls([{"role": "user", "content": f"turn {turn}"}])


@dataclass(frozen=True)
class Round:
    """One call of a session: its turn, its round within the turn, the turn's conversation,
    whether it offers tools (every round but the turn's last), whether it ends the turn
    (the idle gap and the turn's sample follow it), whether it streams and the idle gap
    after it when it ends the turn."""

    turn: int
    rnd: int
    conversation: Conversation
    tools: bool
    ends_turn: bool
    stream: bool = False
    idle_ms: float = 0.0


def rounds(session: SessionSpec, index: int = 0) -> Iterator[Round]:
    """Session ``index``'s calls in order: the one turn loop, shared by the sync and async
    gateway. In a timeline each call is a turn of its own, with its stream flag and gap."""
    if session.timeline:
        for turn, call in enumerate(session.timeline[index].calls, 1):
            conversation = Conversation.for_turn(turn)
            yield Round(turn, 1, conversation, False, True, call.stream, call.idle_ms)
        return
    for turn in range(1, session.turns + 1):
        conversation = Conversation.for_turn(turn)
        for rnd in range(1, session.calls_per_turn + 1):
            last = rnd == session.calls_per_turn
            idle = session.idle_between_turns_ms
            yield Round(turn, rnd, conversation, not last, last, session.stream, idle)


def start_ms(session: SessionSpec, index: int) -> float:
    """How long after the gateway's start session ``index`` makes its first call."""
    return session.timeline[index].start_ms if session.timeline else 0.0


class TimelineTurns:
    """When a timeline's per-turn samples are due: its sessions run unsynchronised (no
    barrier would keep their gaps), so turn N is complete once every session has made its
    N-th call and idled after it, or has made its last call and idled after that. Turns
    complete in order. Not thread-safe: the threaded gateway calls it under a lock."""

    def __init__(self, session: SessionSpec) -> None:
        self._sessions = session.concurrency
        self._turns = session.turns
        self._done = [0] * (session.turns + 2)  # sessions through each turn, 1-based
        self._next = 1

    def finished(self, index: int, turn: int, session: SessionSpec) -> tuple[int, ...]:
        """Session ``index`` idled after its call ``turn``: the turns now complete, in order."""
        last = turn == len(session.timeline[index].calls)
        for done in range(turn, self._turns + 1 if last else turn + 1):
            self._done[done] += 1
        due = []
        while self._next <= self._turns and self._done[self._next] == self._sessions:
            due.append(self._next)
            self._next += 1
        return tuple(due)


def events_after(session: SessionSpec, turn: int) -> tuple[Event, ...]:
    """The events to run once every session finished ``turn`` and its gap, in file order."""
    return tuple(e for e in session.events if e.after_turn == turn)


def events_during(session: SessionSpec, turn: int) -> tuple[Event, ...]:
    """The events to schedule ``at_ms`` after ``turn``'s calls start, in file order."""
    return tuple(e for e in session.events if e.during_turn == turn)


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


def request_args(scenario: Scenario, step: Round, *, session: int) -> tuple[str, dict[str, Any]]:
    """``(resource, kwargs)`` of ``step``'s request: ``client.<resource>.create(**kwargs)``.

    ``resource`` is ``"responses"`` or ``"chat.completions"`` (the scenario's ``server.api``).
    In a timeline every request names its session (its ``name``, else its 1-based number) in
    an ``x-session-id`` header, which
    the mock server's call log records (a trace export can then tell the sessions apart).
    """
    stream, tools, conversation = step.stream, step.tools, step.conversation
    extra: dict[str, Any] = {"tool_choice": "required"} if tools else {}
    if scenario.session.timeline:
        name = scenario.session.timeline[session].name or str(session + 1)
        extra["extra_headers"] = {SESSION_HEADER: name}
    if scenario.server.api == "responses":
        if tools:
            extra["tools"] = [{"type": "function", **_TOOL}]
        return "responses", {
            "model": MODEL,
            "input": conversation.items,
            "stream": stream,
            **extra,
        }
    if tools:
        extra["tools"] = [{"type": "function", "function": _TOOL}]
    return "chat.completions", {
        "model": MODEL,
        "messages": conversation.items,
        "stream": stream,
        **extra,
    }


def resource_of(client: Any, resource: str) -> Any:
    """``client.responses`` or ``client.chat.completions``."""
    return client.responses if resource == "responses" else client.chat.completions


def append_tool_result(scenario: Scenario, conversation: Conversation, tool_call: str) -> None:
    """Append the assistant's tool call and the tool's answer, as an agent's loop does."""
    tool_call = tool_call or f"call_harness_{len(conversation.items)}"
    if scenario.server.api == "responses":
        conversation.items += [
            {"type": "function_call", "call_id": tool_call, "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": tool_call, "output": "42"},
        ]
        return
    conversation.items += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": tool_call,
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": tool_call, "content": "42"},
    ]


def call_id(obj: Any) -> str:
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


def call_record(
    session: int,
    step: Round,
    *,
    t0: float,
    started: float,
    ended: float,
    failure: Exception | None,
) -> CallRecord:
    """The record of ``step``'s round trip, which ran from ``started`` to ``ended`` (clock
    seconds; ``t0``: the session's start). A :class:`FactoryRaised` failure is recorded as
    the factory's own exception with ``factory_raised`` set: the call never tried the server."""
    factory_raised = isinstance(failure, FactoryRaised)
    if isinstance(failure, FactoryRaised):
        failure = failure.failure
    return CallRecord(
        session=session,
        turn=step.turn,
        round=step.rnd,
        ok=failure is None,
        latency_ms=(ended - started) * 1000,
        started_s=started - t0,
        error_type=None if failure is None else error_type(failure),
        error_chain=() if failure is None else error_chain(failure),
        factory_raised=factory_raised,
    )
