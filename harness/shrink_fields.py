"""The scenario fields a shrink changes: their order, reading and setting a dotted name, the
values a number may shrink to, and a scenario's identity (:mod:`harness.shrink` searches)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from harness.schema import Scenario

__all__ = [
    "FIELDS",
    "GAP_GRID",
    "GAP_GUARD",
    "event_turn",
    "fields_of",
    "get_value",
    "scenario_key",
    "show_value",
    "values_of",
    "with_value",
]

GAP_GUARD: Final = 0.25  # a gap stays this share of the idle timeout away from it
GAP_GRID: Final = 64  # a gap is bisected over this many steps of its value
_COUNTS: Final = ("session.concurrency", "session.calls_per_turn")
_EVENT_TURN: Final = re.compile(r"session\.events\[(\d+)\]\.(after_turn|during_turn)")
FIELDS: Final = (
    "server.faults",
    "session.events",
    "session.concurrency",
    "session.turns",
    "session.calls_per_turn",
    "session.idle_between_turns_ms",
    "session.stream",
    "session.abandon_streams",
    "server.latency_ms",
    "server.reply.chunk_delay_ms",
)


def event_turn(name: str) -> re.Match[str] | None:
    """The match of ``session.events[I].after_turn`` (or ``during_turn``), else None."""
    return _EVENT_TURN.fullmatch(name)


def scenario_key(scenario: Scenario) -> str:
    """What a candidate is, whatever it is called: judged once, its runs stand."""
    data = scenario.to_dict()
    del data["name"], data["path"], data["description"]
    return json.dumps(data, sort_keys=True)


def with_value(scenario: Scenario, name: str, value: Any) -> Scenario:
    """``scenario`` with the dotted field ``name`` set to ``value`` (dependants follow)."""
    section, _, rest = name.partition(".")
    event = event_turn(name)
    if event is not None:  # one event's turn: session.events[I].after_turn
        events = list(scenario.session.events)
        index, when = int(event.group(1)), event.group(2)
        events[index] = replace(events[index], **{when: value})
        return replace(scenario, session=replace(scenario.session, events=tuple(events)))
    if section == "session":
        extra = {"abandon_streams": False} if rest == "stream" and not value else {}
        session = replace(scenario.session, **{rest: value, **extra})
        return replace(scenario, session=session)
    if rest == "reply.chunk_delay_ms":
        reply = replace(scenario.server.reply, chunk_delay_ms=value)
        return replace(scenario, server=replace(scenario.server, reply=reply))
    return replace(scenario, server=replace(scenario.server, **{rest: value}))


def get_value(scenario: Scenario, name: str) -> Any:
    """The dotted field ``name`` of ``scenario`` (``session.events[0].after_turn`` too)."""
    value: Any = scenario
    for part in name.split("."):
        attr, _, index = part.partition("[")
        value = getattr(value, attr)
        if index:
            value = value[int(index.rstrip("]"))]
    return value


def fields_of(scenario: Scenario) -> list[str]:
    """:data:`FIELDS`, each event's turn right after the events (moving an event earlier
    lets the turns shrink)."""
    turns = [
        f"session.events[{i}].{'after_turn' if e.after_turn is not None else 'during_turn'}"
        for i, e in enumerate(scenario.session.events)
    ]
    at = FIELDS.index("session.events") + 1
    return [*FIELDS[:at], *turns, *FIELDS[at:]]


def show_value(value: Any) -> str:
    if isinstance(value, tuple):
        labels = [str(getattr(v, "label", None) or getattr(v, "kind", "?")) for v in value]
        return f"[{', '.join(labels)}]" if labels else "[]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def values_of(scenario: Scenario, name: str) -> Sequence[Any]:
    """The values a number field may shrink to, ascending, its current value last: a count
    down to 1 (turns down to the last event's turn), a time in ms over a grid down to 0."""
    now = get_value(scenario, name)
    if name == "session.turns":  # the events left need their turns
        return range(max((e.turn for e in scenario.session.events), default=1), now + 1)
    if name in _COUNTS or event_turn(name):
        return range(1, now + 1)
    grid = sorted({round(now * i / GAP_GRID) for i in range(GAP_GRID)} | {now})
    timeout = scenario.server.keepalive.idle_timeout_ms
    if name == "session.idle_between_turns_ms" and timeout is not None:
        lo, hi = timeout * (1 - GAP_GUARD), timeout * (1 + GAP_GUARD)
        grid = [g for g in grid if not lo < g < hi or g == now]
    return grid
