"""The values an answer is made of, before any HTTP framing: no sockets, no clock.

A complete answer is a :class:`Payload` (status, headers, body); a streamed one is a
:class:`StreamPlan` of Server-Sent-Event frames; a request the server refuses is a
:class:`Reject` (a value, never an exception), which :func:`error_payload` turns into OpenAI's
error JSON. :mod:`.wire` frames these values for HTTP; :mod:`.bodies` fills them with OpenAI's
formats.

A :class:`StreamPlan` has three parts so the fault layer can cut it without knowing OpenAI's
formats: ``head`` (events before the first text delta), ``chunks`` (one frame per delta; what
``truncate_stream.after_chunks`` and ``chunk_delay_ms`` count) and ``tail`` (the final events
and ``[DONE]``, never sent when a stream is truncated).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "JSON_HEADERS",
    "SSE_HEADERS",
    "Payload",
    "Reject",
    "StreamPlan",
    "dumps",
    "error_payload",
    "json_payload",
]

JSON_HEADERS: Final = (("content-type", "application/json"),)
SSE_HEADERS: Final = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))


@dataclass(frozen=True)
class Reject:
    """A request answered with an error: OpenAI's ``{"error": {...}}`` shape."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None


@dataclass(frozen=True)
class Payload:
    """A complete response: status, headers (without content-length) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class StreamPlan:
    """An SSE response as frames: ``head``, one frame per delta in ``chunks``, then ``tail``."""

    head: tuple[bytes, ...]
    chunks: tuple[bytes, ...]
    tail: tuple[bytes, ...]

    def joined(self) -> bytes:
        """Every frame in order: the whole stream when nothing pauses or cuts it."""
        return b"".join((*self.head, *self.chunks, *self.tail))


# One shared encoder: json.dumps() with options builds a new one per call, which shows in
# the profile of a stream (one call per frame).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def dumps(data: Any) -> bytes:
    """``data`` as compact JSON bytes (no spaces), as OpenAI sends it."""
    return _ENCODER.encode(data).encode()


def json_payload(status: int, data: Any, headers: Sequence[tuple[str, str]] = ()) -> Payload:
    """``data`` as a JSON answer with ``status``; ``headers`` follow the content type."""
    return Payload(status, (*JSON_HEADERS, *headers), dumps(data))


def error_payload(reject: Reject, *, retry_after_s: float | None = None) -> Payload:
    """OpenAI's error JSON; ``retry-after`` (seconds, may be fractional) when given."""
    error = {
        "message": reject.message,
        "type": reject.type,
        "param": reject.param,
        "code": reject.code,
    }
    headers = () if retry_after_s is None else (("retry-after", f"{retry_after_s:g}"),)
    return json_payload(reject.status, {"error": error}, headers)
