"""The hand-written response framing: byte for byte what h11 sends, and the reply steps."""

from __future__ import annotations

import h11
import pytest

from harness.mockserver import wire
from harness.mockserver.payload import JSON_HEADERS, SSE_HEADERS, StreamPlan, json_payload
from harness.mockserver.wire import LAST_CHUNK, Framing, chunk

PLAN = StreamPlan(head=(b"H1", b"H2"), chunks=(b"c1", b"c2", b"c3"), tail=(b"T1", b"T2"))
HTTP11 = Framing(keep_alive=True, chunked=True, head_only=False)
CLOSING = Framing(keep_alive=False, chunked=True, head_only=False)
HTTP10 = Framing(keep_alive=False, chunked=False, head_only=False)


def h11_after_request(request: bytes) -> h11.Connection:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    while not isinstance(conn.next_event(), h11.EndOfMessage):
        pass
    return conn


REQUESTS = {
    "keep-alive": b"POST /v1/x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\n{}",
    "connection-close": b"GET /v1/x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    "http/1.0": b"GET /v1/x HTTP/1.0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REQUESTS))
@pytest.mark.parametrize(
    ("status", "headers", "length"),
    [
        (200, JSON_HEADERS, 17),
        (429, (*JSON_HEADERS, ("retry-after", "0.05")), 90),
        (200, SSE_HEADERS, None),
    ],
)
def test_response_head_is_what_h11_sends(
    name: str, status: int, headers: tuple[tuple[str, str], ...], length: int | None
) -> None:
    conn = h11_after_request(REQUESTS[name])
    framing = wire.framing_for(
        conn.their_http_version or b"", keep_alive=conn.their_state is h11.DONE, method=b"GET"
    )
    extra = [] if length is None else [("content-length", str(length))]
    expected = conn.send(h11.Response(status_code=status, headers=[*headers, *extra]))
    close = not framing.keep_alive or (length is None and not framing.chunked)
    head = wire.response_head(status, headers, length=length, close=close, chunked=framing.chunked)
    assert head == expected
    assert framing.keep_alive is (name == "keep-alive")
    assert framing.chunked is (name != "http/1.0")


def test_chunks_are_what_h11_sends() -> None:
    conn = h11_after_request(REQUESTS["keep-alive"])
    conn.send(h11.Response(status_code=200, headers=list(SSE_HEADERS)))
    assert chunk(b"data: x\n\n") == conn.send(h11.Data(data=b"data: x\n\n"))
    assert chunk(b"") == b""
    assert conn.send(h11.EndOfMessage()) == LAST_CHUNK


def sse_head(*, close: bool = False, chunked: bool = True) -> bytes:
    return wire.response_head(200, SSE_HEADERS, length=None, close=close, chunked=chunked)


def test_stream_without_pauses_is_one_write() -> None:
    reply = wire.stream_reply(PLAN, HTTP11)
    assert reply == wire.Reply((sse_head() + chunk(b"H1H2c1c2c3T1T2") + LAST_CHUNK,), 200, "keep")
    assert wire.whole_stream_reply(b"H1H2c1c2c3T1T2", HTTP11) == reply


def test_chunk_delay_and_stall_split_the_writes() -> None:
    reply = wire.stream_reply(PLAN, HTTP11, delay_s=0.5, chunk_delay_s=0.1, stall_s=2.0)
    assert reply.steps == (
        0.5,
        sse_head() + chunk(b"H1H2c1"),
        2.1,  # the stall after the first chunk, plus the chunk delay
        chunk(b"c2"),
        0.1,
        chunk(b"c3T1T2") + LAST_CHUNK,
    )
    assert (reply.status, reply.end) == (200, "keep")


def test_truncated_stream_has_no_tail_and_ends_with_fin() -> None:
    reply = wire.stream_reply(PLAN, HTTP11, cut=1)
    assert reply == wire.Reply((sse_head() + chunk(b"H1H2c1"),), 200, "fin")
    assert wire.stream_reply(PLAN, HTTP11, cut=0).steps == (sse_head() + chunk(b"H1H2"),)


def test_http10_stream_is_close_delimited() -> None:
    reply = wire.stream_reply(PLAN, HTTP10)
    assert reply == wire.Reply(
        (sse_head(close=True, chunked=False) + b"H1H2c1c2c3T1T2",), 200, "fin"
    )
    assert wire.whole_stream_reply(b"H1H2c1c2c3T1T2", HTTP10) == reply


def test_stream_to_a_closing_client_ends_with_fin() -> None:
    reply = wire.stream_reply(PLAN, CLOSING)
    assert reply.end == "fin"
    assert reply.steps == (sse_head(close=True) + chunk(b"H1H2c1c2c3T1T2") + LAST_CHUNK,)


def test_payload_reply_steps_and_endings() -> None:
    payload = json_payload(200, {"a": 1})
    head = wire.response_head(200, JSON_HEADERS, length=7, close=False, chunked=True)
    assert wire.payload_reply(payload, HTTP11) == wire.Reply((head + b'{"a":1}',), 200, "keep")
    assert wire.payload_reply(payload, HTTP11, delay_s=0.2, pause_s=1.0).steps == (
        0.2,
        head,
        1.0,
        b'{"a":1}',
    )
    closing = wire.payload_reply(payload, CLOSING)
    assert closing.end == "fin"
    assert closing.steps == (
        wire.response_head(200, JSON_HEADERS, length=7, close=True, chunked=True) + b'{"a":1}',
    )
    head_only = Framing(keep_alive=True, chunked=True, head_only=True)
    assert wire.payload_reply(payload, head_only).steps == (head,)


def test_reply_without_answer() -> None:
    assert wire.reply_without_answer("rst") == wire.Reply((), 0, "rst")
