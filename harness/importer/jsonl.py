"""JSON Lines traces: one call per line, ``{ts, session, duration_ms, stream, status, error}``.

``ts`` (required) is when the call started: ISO-8601 text (``2026-12-01T10:00:00.250Z``; no
zone means UTC) or epoch seconds (a number, fractions allowed); ``duration_ms`` (required) how
long it took. ``session`` (text or number, default ``1``), ``stream`` (default false),
``status`` (the HTTP status, default 200; 0 for none) and ``error`` (text, null for none) are
optional; other keys are ignored, so a gateway's own log lines can be read as they are. Blank
lines are skipped. :func:`call_from_record` is also what :mod:`.export` writes, read back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.errors import TraceError
from harness.importer.model import (
    Refused,
    Trace,
    TraceCall,
    as_bool,
    as_epoch_s,
    as_number,
    as_text,
)

__all__ = ["as_status", "call_from_record", "read_jsonl"]

_SHAPE = '{"ts": ..., "session": ..., "duration_ms": ..., "stream": ..., "status": ...}'


def read_jsonl(path: str, text: str) -> Trace:
    """Every record of ``text``; a bad line raises :class:`TraceError` naming it."""
    calls = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"not JSON ({exc.msg}); each line is one record {_SHAPE}"
            raise TraceError(path, number, message) from None
        if not isinstance(record, dict):
            raise TraceError(path, number, f"a record is a JSON object {_SHAPE}, not {line[:40]}")
        try:
            calls.append(call_from_record(record, number))
        except Refused as exc:
            raise TraceError(path, number, str(exc)) from None
    return Trace(path, "jsonl", tuple(calls))


def call_from_record(record: Mapping[str, Any], where: int | str) -> TraceCall:
    """One record as a call; :class:`Refused` says which field is wrong."""
    return TraceCall(
        start_s=as_epoch_s(record, "ts"),
        duration_ms=as_number(record, "duration_ms"),
        session=as_text(record, "session", "1"),
        stream=as_bool(record, "stream"),
        status=as_status(record, "status"),
        error=as_text(record, "error", ""),
        where=where,
    )


def as_status(data: Mapping[str, Any], key: str) -> int:
    """An HTTP status 0..599 (default 200: a log that records none logged successes)."""
    value = as_number(data, key, default=200)
    if not value.is_integer() or value > 599:
        raise Refused(f"`{key}` is {data[key]!r}; give an HTTP status 100..599, or 0 for none")
    return int(value)
