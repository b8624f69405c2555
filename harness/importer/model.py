"""The one typed timeline every trace format is read into, and the field readers they share.

A :class:`Trace` is a flat list of :class:`TraceCall` values (when each call started, how long
it took, its session, whether it streamed, how it ended) plus where it came from. The readers
(:mod:`.jsonl`, :mod:`.har`, :mod:`.otel`) only translate a format's fields into these values;
everything the replay decides (gaps, compression) is :mod:`.replay`'s, from this model alone.
A field reader that refuses a value raises :class:`Refused` with what is wrong; the format's
reader adds the file and the line or entry (:class:`~harness.errors.TraceError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "Refused",
    "Trace",
    "TraceCall",
    "as_bool",
    "as_epoch_s",
    "as_number",
    "as_text",
    "parse_iso",
]

# Timestamps before 1970 or after 9999 are typos (milliseconds given as seconds, ...).
_MAX_EPOCH_S: Final = 253_402_300_799.0


class Refused(ValueError):
    """A field's value a reader cannot use; the message says what to give instead."""


@dataclass(frozen=True)
class TraceCall:
    """One LLM call of a trace: ``start_s`` (epoch seconds), ``duration_ms``, its session's
    name, whether it streamed, the HTTP status (0: none, e.g. a connection error) and an
    error label ("" for none). ``where``: its line (int) or entry (str), for messages."""

    start_s: float
    duration_ms: float
    session: str = "1"
    stream: bool = False
    status: int = 200
    error: str = ""
    where: int | str = 0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_ms / 1000


@dataclass(frozen=True)
class Trace:
    """A timeline of calls read from ``path`` in format ``fmt``, in file order."""

    path: str
    fmt: str
    calls: tuple[TraceCall, ...]

    def sessions(self) -> dict[str, tuple[TraceCall, ...]]:
        """Each session's calls by start time, sessions in the order they first called."""
        ordered = sorted(self.calls, key=lambda c: c.start_s)
        out: dict[str, list[TraceCall]] = {}
        for call in ordered:
            out.setdefault(call.session, []).append(call)
        return {name: tuple(calls) for name, calls in out.items()}


def as_number(data: Mapping[str, Any], key: str, *, default: float | None = None) -> float:
    """``data[key]`` as a finite number >= 0 (a numeric string too, as OTLP writes them)."""
    if key not in data or data[key] is None:
        if default is None:
            raise Refused(f"`{key}` is missing; give it as a number")
        return float(default)
    value = data[key]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Refused(f"`{key}` is {data[key]!r}, not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(f"`{key}` is {value!r}, not a number")
    if not math.isfinite(value) or value < 0:
        raise Refused(f"`{key}` is {value!r}; give a finite number >= 0")
    return float(value)


def as_bool(data: Mapping[str, Any], key: str) -> bool:
    """``data[key]`` as true or false (false when absent or null)."""
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Refused(f"`{key}` is {value!r}; give true or false")
    return value


def as_text(data: Mapping[str, Any], key: str, default: str) -> str:
    """``data[key]`` as text (a number is spelled out; ``default`` when absent or null)."""
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Refused(f"`{key}` is {value!r}; give a string")
    return str(value)


def as_epoch_s(data: Mapping[str, Any], key: str) -> float:
    """``data[key]``, a time: ISO-8601 text (without a zone: UTC) or epoch seconds."""
    value = data.get(key)
    if isinstance(value, str):
        return parse_iso(value, key)
    seconds = as_number(data, key)
    if seconds > _MAX_EPOCH_S:
        raise Refused(f"`{key}` is {value!r}: epoch seconds after the year 9999 (milliseconds?)")
    return seconds


def parse_iso(text: str, key: str) -> float:
    """ISO-8601 text as epoch seconds; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        message = f"`{key}` is {text!r}; give ISO-8601 (2026-12-01T10:00:00.250Z) or epoch seconds"
        raise Refused(message) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
