"""Sans-IO response framing: the bytes of an answer and the pauses between them.

h11 parses every request, but the server writes its answers with these functions instead of
``h11.Connection.send``: an h11 send cycle (Response, Data, EndOfMessage) costs about as much
as parsing the request did, and the answers are a handful of fixed shapes. The bytes are the
ones h11 sends (tests/test_mockserver_wire.py compares them): ``HTTP/1.1 <status> `` with no
reason phrase, the given headers in order, then ``content-length`` or ``transfer-encoding:
chunked`` (no framing header and a close-delimited body for an HTTP/1.0 peer), then
``connection: close`` when the connection ends after the answer.

An answer is a :class:`Reply`: ``steps`` to play in order (bytes to write, or a float: seconds
to wait), the status to record, and how the connection ends (``keep`` it for the next
request, or close it with ``fin``, ``rst`` or ``silent``). Adjacent writes are merged, so an
answer without pauses is one write.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final, Literal, NamedTuple

from harness.mockserver.payload import SSE_HEADERS, Payload, StreamPlan

__all__ = [
    "LAST_CHUNK",
    "End",
    "Framing",
    "Reply",
    "Step",
    "chunk",
    "framing_for",
    "payload_reply",
    "reply_without_answer",
    "response_head",
    "stream_reply",
    "whole_stream_reply",
]

End = Literal["keep", "fin", "rst", "silent"]
Step = bytes | float  # bytes to write, or seconds to wait
LAST_CHUNK: Final = b"0\r\n\r\n"


class Reply(NamedTuple):
    """How to answer one request: what to write and wait, the status, how the connection ends."""

    steps: tuple[Step, ...]
    status: int
    end: End


class Framing(NamedTuple):
    """What the request fixes about the answer's framing."""

    keep_alive: bool  # h11 left the client in DONE, not MUST_CLOSE
    chunked: bool  # the client speaks HTTP/1.1; HTTP/1.0 gets a close-delimited stream
    head_only: bool  # a HEAD request: headers as for GET, no body


@functools.lru_cache(maxsize=512)
def response_head(
    status: int,
    headers: tuple[tuple[str, str], ...],
    *,
    length: int | None,
    close: bool,
    chunked: bool,
) -> bytes:
    """The status line and headers h11 would send; ``length=None``: a body of unknown length."""
    fields = list(headers)
    if length is not None:
        fields.append(("content-length", str(length)))
    elif chunked:
        fields.append(("Transfer-Encoding", "chunked"))  # h11 title-cases the headers it adds
    if close:
        fields.append(("Connection", "close"))
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return f"HTTP/1.1 {status} \r\n{lines}\r\n".encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (empty data is no chunk: it would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def payload_reply(
    payload: Payload, framing: Framing, *, delay_s: float = 0.0, pause_s: float = 0.0
) -> Reply:
    """A complete response after ``delay_s``, with ``pause_s`` between headers and body."""
    head = response_head(
        payload.status,
        payload.headers,
        length=len(payload.body),
        close=not framing.keep_alive,
        chunked=framing.chunked,
    )
    body = b"" if framing.head_only else payload.body
    end: End = "keep" if framing.keep_alive else "fin"
    if not delay_s and not pause_s:  # the common case, without the general merge
        return Reply((head + body,), payload.status, end)
    return Reply(_merge([delay_s, head, pause_s, body]), payload.status, end)


def stream_reply(
    plan: StreamPlan,
    framing: Framing,
    *,
    delay_s: float = 0.0,
    chunk_delay_s: float = 0.0,
    stall_s: float = 0.0,
    cut: int | None = None,
) -> Reply:
    """An SSE response: frames with no pause between them leave in one write (one HTTP chunk).

    ``chunk_delay_s`` between delta chunks, ``stall_s`` after the first one; ``cut``: send
    only that many delta chunks, then end with a FIN and no tail and no last chunk.
    """
    keep, head = _stream_head(framing)
    if framing.head_only:
        return Reply(_merge([delay_s, head]), 200, "keep" if keep else "fin")
    frame = chunk if framing.chunked else bytes
    steps: list[Step] = [delay_s, head]
    burst = list(plan.head)
    owed = 0.0  # the pause owed before the next frame
    for number, data in enumerate(plan.chunks if cut is None else plan.chunks[:cut]):
        pause = owed + (chunk_delay_s if number else 0.0)
        if pause > 0:
            steps += [frame(b"".join(burst)), pause]
            burst = []
        burst.append(data)
        owed = stall_s if number == 0 else 0.0
    if cut is not None:
        return Reply(_merge([*steps, frame(b"".join(burst))]), 200, "fin")
    if owed > 0:
        steps += [frame(b"".join(burst)), owed]
        burst = []
    burst.extend(plan.tail)
    last = LAST_CHUNK if framing.chunked else b""
    return Reply(_merge([*steps, frame(b"".join(burst)), last]), 200, "keep" if keep else "fin")


def whole_stream_reply(data: bytes, framing: Framing, *, delay_s: float = 0.0) -> Reply:
    """An SSE response whose frames (``data``, joined) leave in one write: what
    :func:`stream_reply` sends when nothing pauses or cuts the stream."""
    keep, head = _stream_head(framing)
    if framing.head_only:
        data = b""
    elif framing.chunked:
        data = chunk(data) + LAST_CHUNK
    return Reply(_merge([delay_s, head + data]), 200, "keep" if keep else "fin")


def _stream_head(framing: Framing) -> tuple[bool, bytes]:
    """Whether the connection stays open after a stream, and the stream's head."""
    keep = framing.keep_alive and framing.chunked  # HTTP/1.0: the close ends the body
    head = response_head(200, SSE_HEADERS, length=None, close=not keep, chunked=framing.chunked)
    return keep, head


def _merge(steps: Iterable[Step]) -> tuple[Step, ...]:
    """Drop empty writes and zero waits; join adjacent writes and add up adjacent waits."""
    out: list[Step] = []
    for step in steps:
        if not step:
            continue
        if out and type(out[-1]) is type(step):
            out[-1] = out[-1] + step  # type: ignore[operator]
        else:
            out.append(step)
    return tuple(out)


def reply_without_answer(end: End) -> Reply:
    """A request dropped without a byte of answer; the connection ends as ``end`` says."""
    return Reply((), 0, end)


def framing_for(http_version: bytes, *, keep_alive: bool, method: bytes) -> Framing:
    """The framing for a request h11 parsed; ``keep_alive`` is h11's verdict on it (the
    client's state after the request is DONE, not MUST_CLOSE: no ``Connection: close``, not
    HTTP/1.0)."""
    return Framing(keep_alive, http_version >= b"1.1", method == b"HEAD")
