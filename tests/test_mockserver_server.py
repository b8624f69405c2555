"""The mock server on real loopback sockets, driven by raw sockets and the real openai SDK.

Timing assertions are lower bounds only (the machine is shared); counts and orderings are
exact. Every test stops its servers and closes its clients; the autouse fixture checks that
no server thread outlives a test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import importlib.metadata
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import h11
import httpx
import openai
import psutil
import pytest
from _wait import blocked_in, until

from harness.errors import UsageError
from harness.mockserver import MockServer
from harness.result import ServerStats
from harness.scenario import (
    HttpError,
    Keepalive,
    Reply,
    ResetOnReuse,
    ServerSpec,
    Stall,
    TruncateStream,
)

# The server must serve every SDK line's client, retries and stream errors: the tests that
# drive it with the SDK (or httpx) are `sdk`; those on raw sockets run on one line.

MESSAGES: list[Any] = [{"role": "user", "content": "ping"}]
CHAT_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]
RESPONSES_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "strict": False,
        "parameters": {"type": "object", "properties": {}},
    }
]
CHAT_BODY = json.dumps({"model": "m", "messages": MESSAGES}).encode()


@pytest.fixture(autouse=True)
def _nothing_left_behind(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    process = psutil.Process()
    # Collect first: an earlier test's garbage closing its fds during this one is no leak
    # of this one (it made the count drop by one under xdist in CI).
    gc.collect()
    fds = process.num_fds()
    yield
    gc.collect()  # an unclosed socket would warn here, and warnings are errors
    left = [t.name for t in threading.enumerate() if t.name.startswith("mockserver-")]
    assert left == []
    assert process.num_fds() <= fds
    # asyncio and the server log what goes wrong in their threads; nothing may.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@contextmanager
def serving(spec: ServerSpec | None = None) -> Iterator[MockServer]:
    with MockServer(spec or ServerSpec()) as server:
        yield server


@contextmanager
def sdk(server: MockServer, **kwargs: Any) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="test", base_url=server.base_url, **kwargs)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def raw(server: MockServer) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One complete response read with an h11 client state machine."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    status, headers, body = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, body


def statuses(stats: ServerStats) -> list[int]:
    return [call.status for call in stats.calls]


def wait_for_idle_closes(server: MockServer, count: int) -> None:
    """Block until the server has reaped ``count`` idle connections and their FINs or RSTs
    are on the wire (the count comes first, within the same loop step as the close)."""
    until(
        lambda: server.stats().faults_fired.get("idle_close", 0) >= count,
        what=f"{count} idle close(s)",
        timeout_s=10,
        interval_s=0.01,
    )
    server.settle()  # returns once every close under way has left


# --- the SDK parses every reply --------------------------------------------------------------


@pytest.mark.sdk
def test_sync_chat_plain_stream_and_usage() -> None:
    with serving() as server, sdk(server) as client:
        done = client.chat.completions.create(model="m", messages=MESSAGES)
        assert done.choices[0].message.content == "pong"
        assert done.usage is not None and done.usage.completion_tokens == 3
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "pong"
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
        stats = server.stats()
    assert [(c.path, c.stream, c.status) for c in stats.calls] == [
        ("/v1/chat/completions", False, 200),
        ("/v1/chat/completions", True, 200),
    ]


@pytest.mark.sdk
def test_sync_chat_tool_calls_plain_and_streamed() -> None:
    with serving() as server, sdk(server) as client:
        done = client.chat.completions.create(
            model="m", messages=MESSAGES, tools=CHAT_TOOLS, tool_choice="required"
        )
        calls = done.choices[0].message.tool_calls
        assert done.choices[0].finish_reason == "tool_calls"
        assert calls is not None and calls[0].function.name == "lookup"  # type: ignore[union-attr]
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, tools=CHAT_TOOLS, tool_choice="required", stream=True
        )
        chunks = list(stream)
        deltas = [c.choices[0].delta for c in chunks]
        assert deltas[0].tool_calls is not None
        assert deltas[0].tool_calls[0].function.name == "lookup"  # type: ignore[union-attr]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        text = client.chat.completions.create(model="m", messages=MESSAGES, tools=CHAT_TOOLS)
        assert text.choices[0].message.content == "pong"


@pytest.mark.sdk
def test_sync_responses_plain_stream_helper_and_function_call() -> None:
    with serving() as server, sdk(server) as client:
        assert client.responses.create(model="m", input="ping").output_text == "pong"
        events = [e.type for e in client.responses.create(model="m", input="ping", stream=True)]
        assert events[0] == "response.created" and events[-1] == "response.completed"
        assert events.count("response.output_text.delta") == 3
        with client.responses.stream(model="m", input="ping") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert (deltas, final.output_text) == (["po", "n", "g"], "pong")
        called = client.responses.create(
            model="m", input="ping", tools=RESPONSES_TOOLS, tool_choice="required"
        )
        assert [(o.type, getattr(o, "name", None)) for o in called.output] == [
            ("function_call", "lookup")
        ]
        with client.responses.stream(
            model="m", input="ping", tools=RESPONSES_TOOLS, tool_choice="required"
        ) as stream:
            final = stream.get_final_response()
        assert final.output[0].type == "function_call"


@pytest.mark.sdk
def test_models_list() -> None:
    with serving() as server, sdk(server) as client:
        assert [m.id for m in client.models.list()] == ["mock-model"]


@pytest.mark.sdk
def test_async_client_chat_and_responses() -> None:
    async def session(base_url: str) -> tuple[str, str, str]:
        client = openai.AsyncOpenAI(api_key="test", base_url=base_url)
        try:
            plain = await client.chat.completions.create(model="m", messages=MESSAGES)
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            async with client.responses.stream(model="m", input="ping") as rstream:
                final = await rstream.get_final_response()
            return plain.choices[0].message.content or "", text, final.output_text
        finally:
            await client.close()

    with serving(ServerSpec(api="responses", reply=Reply(text="hello", chunks=2))) as server:
        assert asyncio.run(session(server.base_url)) == ("hello", "hello", "hello")


# --- keep-alive idle reaping ------------------------------------------------------------------


def _idle_spec(close: Any) -> ServerSpec:
    return ServerSpec(keepalive=Keepalive(idle_timeout_ms=50, close=close))


def test_idle_fin_closes_with_fin() -> None:
    with serving(_idle_spec("fin")) as server, raw(server) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(sock)[0] == 200
        assert sock.recv(1024) == b""  # FIN after the idle time
        assert server.stats().faults_fired == {"idle_close": 1}


def test_idle_rst_resets_the_connection() -> None:
    with serving(_idle_spec("rst")) as server, raw(server) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(sock)[0] == 200
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)
        assert server.stats().faults_fired == {"idle_close": 1}


def test_idle_silent_keeps_the_socket_open_and_never_answers() -> None:
    with serving(_idle_spec("silent")) as server, raw(server) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(sock)[0] == 200
        wait_for_idle_closes(server, 1)
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1024)  # neither an answer, nor FIN, nor RST
        assert len(server.stats().calls) == 1


@contextmanager
def loop_blocked(server: MockServer) -> Iterator[threading.Event]:
    """Block the server's event loop until the yielded event is set (or the block ends)."""
    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(10)

    assert server._loop is not None
    server._loop.call_soon_threadsafe(block)
    blocked.wait(10)
    try:
        yield release
    finally:
        release.set()


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_settle_ends_an_overdue_idle_connection_at_once(close: Any) -> None:
    with serving(_idle_spec(close)) as server, raw(server) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(sock)[0] == 200
        results: list[frozenset[int]] = []
        settling = threading.Thread(target=lambda: results.append(server.settle()))
        with loop_blocked(server) as release:
            [conn] = server._connections  # the loop is blocked: safe to read from here
            deadline = conn.machine.deadline
            assert deadline is not None
            until(lambda: time.monotonic() > deadline, what="the idle deadline")
            assert server.stats().faults_fired == {}  # the loop cannot run the timer
            settling.start()
            # settle() queues its callback, then waits for its result: once it waits, the
            # callback is queued behind the block, and so runs before the overdue timer.
            until(lambda: blocked_in(settling, concurrent.futures.Future.result))
            release.set()
            settling.join(10)
        [ports] = results
        assert ports == frozenset()
        assert server.stats().faults_fired == {"idle_close": 1}
        sock.setblocking(False)  # the end is on the wire already: no waiting for it
        if close == "fin":
            assert sock.recv(1024) == b""
        else:
            with pytest.raises(ConnectionResetError):
                sock.recv(1024)


def test_settle_keeps_serving_and_silent_connections_in_the_set() -> None:
    with serving(_idle_spec("silent")) as server, raw(server) as quiet:
        quiet.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(quiet)[0] == 200
        wait_for_idle_closes(server, 1)
        with raw(server) as fresh:
            fresh.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
            assert read_response(fresh)[0] == 200
            ports = server.settle()  # `fresh` is within its deadline
            assert ports == {quiet.getsockname()[1], fresh.getsockname()[1]}
    assert server.settle() == frozenset()  # a stopped server has nothing open


def test_settle_leaves_a_connection_within_its_deadline_alone() -> None:
    spec = ServerSpec(keepalive=Keepalive(idle_timeout_ms=60_000, close="fin"))
    with serving(spec) as server, raw(server) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(sock)[0] == 200
        assert server.settle() == {sock.getsockname()[1]}
        assert server.stats().faults_fired == {}


def test_settle_needs_a_started_server() -> None:
    with pytest.raises(RuntimeError, match="cannot settle a MockServer that is new"):
        MockServer(ServerSpec()).settle()


@pytest.mark.sdk
def test_sdk_survives_fin_reaping_without_retries() -> None:
    # httpcore polls an idle pooled connection before reuse, so a reaped one costs nothing.
    with serving(_idle_spec("fin")) as server, sdk(server, max_retries=2) as client:
        for turn in range(1, 4):
            client.chat.completions.create(model="m", messages=MESSAGES)
            wait_for_idle_closes(server, turn)
        stats = server.stats()
    assert stats.retry_counts == (0, 0, 0)
    assert stats.requests_per_connection == (1, 1, 1)
    assert stats.faults_fired == {"idle_close": 3}


@pytest.mark.sdk
def test_silent_server_costs_a_read_timeout_and_a_retry() -> None:
    # A silent close leaves a pooled connection that looks alive: the next request on it waits
    # for the read timeout, and the SDK's retry (on a new connection) is the call that counts.
    with serving(_idle_spec("silent")) as server, sdk(server, max_retries=1, timeout=1.0) as client:
        client.chat.completions.create(model="m", messages=MESSAGES)
        wait_for_idle_closes(server, 1)
        start = time.monotonic()
        assert client.chat.completions.create(model="m", messages=MESSAGES).id
        assert time.monotonic() - start >= 1.0
        stats = server.stats()
    assert stats.retry_counts == (0, 1)
    assert stats.requests_per_connection == (1, 1)


def test_expect_100_continue_gets_an_interim_response() -> None:
    with serving() as server, raw(server) as sock:
        sock.sendall(
            request_bytes(
                "POST", "/v1/chat/completions", b"", headers=(("expect", "100-continue"),)
            ).replace(b"content-length: 0", b"content-length: %d" % len(CHAT_BODY))
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 \r\n\r\n"
        sock.sendall(CHAT_BODY)
        assert read_response(sock)[0] == 200


# --- per-call faults --------------------------------------------------------------------------


@pytest.mark.sdk
@pytest.mark.parametrize("mode", ["fin", "rst"])
def test_reset_on_reuse_drops_exactly_the_reused_requests(mode: Any) -> None:
    spec = ServerSpec(faults=(ResetOnReuse(mode=mode),))
    with serving(spec) as server, sdk(server, max_retries=2) as client:
        for _ in range(3):
            assert client.chat.completions.create(model="m", messages=MESSAGES).id
        stats = server.stats()
    assert statuses(stats) == [200, 0, 200, 0, 200]
    assert [c.fault for c in stats.calls] == [None, "reset_on_reuse", None, "reset_on_reuse", None]
    assert stats.retry_counts == (0, 0, 1, 0, 1)
    assert stats.requests_per_connection == (2, 2, 1)
    assert stats.faults_fired == {"reset_on_reuse": 2}


def test_reset_on_reuse_raw_rst() -> None:
    spec = ServerSpec(faults=(ResetOnReuse(mode="rst", calls=(2,)),))
    with serving(spec) as server, raw(server) as sock:
        sock.sendall(request_bytes("GET", "/v1/models"))
        assert read_response(sock)[0] == 200
        sock.sendall(request_bytes("GET", "/v1/models"))
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


@pytest.mark.sdk
def test_http_429_with_retry_after_is_retried_by_the_sdk() -> None:
    spec = ServerSpec(faults=(HttpError(status=429, retry_after_s=0.05, calls=(1,)),))
    with serving(spec) as server:
        with raw(server) as sock:  # the header as sent
            sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
            status, headers, body = read_response(sock)
        assert (status, headers["retry-after"]) == (429, "0.05")
        assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
        server.reset()
        with sdk(server, max_retries=2) as client:
            assert client.chat.completions.create(model="m", messages=MESSAGES).id
        stats = server.stats()
    assert statuses(stats) == [429, 200]
    assert stats.retry_counts == (0, 1)
    assert stats.retries == 1
    assert stats.faults_fired == {"http_error": 1}


@pytest.mark.sdk
def test_http_500_on_every_attempt_raises_after_retries() -> None:
    spec = ServerSpec(faults=(HttpError(status=500, retry_after_s=0.01),))
    with serving(spec) as server, sdk(server, max_retries=2) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert server.stats().retry_counts == (0, 1, 2)


@pytest.mark.sdk
def test_latency_and_first_byte_stall_are_lower_bounds() -> None:
    spec = ServerSpec(latency_ms=100, faults=(Stall(ms=300, at="first_byte", calls=(2,)),))
    with serving(spec) as server, sdk(server, max_retries=0) as client:
        elapsed = []
        for _ in range(2):
            start = time.monotonic()
            client.chat.completions.create(model="m", messages=MESSAGES)
            elapsed.append(time.monotonic() - start)
        stats = server.stats()
    assert elapsed[0] >= 0.1
    assert elapsed[1] >= 0.4
    assert [c.fault for c in stats.calls] == [None, "stall"]


@pytest.mark.sdk
def test_between_chunks_stall_comes_after_the_first_chunk() -> None:
    spec = ServerSpec(faults=(Stall(ms=1500, at="between_chunks"),))
    with serving(spec) as server, sdk(server, max_retries=0) as client:
        start = time.monotonic()
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        arrivals = [(time.monotonic() - start, c.choices[0].delta.content) for c in stream]
    contents = [content for _, content in arrivals]
    assert contents == ["", "po", "n", "g", None]
    # Nothing after the first chunk can arrive before the stall has passed, and the stall
    # sits between the first and second chunks (half a second of slack for a loaded machine).
    assert arrivals[2][0] >= 1.5
    assert arrivals[2][0] - arrivals[1][0] >= 1.0


@pytest.mark.sdk
def test_stall_beyond_the_client_timeout_is_a_timeout() -> None:
    spec = ServerSpec(faults=(Stall(ms=1500, at="first_byte"),))
    with (
        serving(spec) as server,
        sdk(server, max_retries=0, timeout=0.2) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(model="m", messages=MESSAGES)


# openai 3.x wraps a stream cut short in APIConnectionError; 1.x/2.x let httpx's error out.
TRUNCATED_STREAM_ERROR: type[Exception] = (
    openai.APIConnectionError
    if int(importlib.metadata.version("openai").split(".")[0]) >= 3
    else httpx.RemoteProtocolError
)


@pytest.mark.sdk
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_truncated_stream_makes_the_sdk_raise(api: str) -> None:
    spec = ServerSpec(faults=(TruncateStream(after_chunks=1, calls=(1,)),))
    with serving(spec) as server, sdk(server, max_retries=0) as client:
        received: list[str] = []
        with pytest.raises(TRUNCATED_STREAM_ERROR):
            if api == "chat":
                for c in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                    received.append(c.choices[0].delta.content or "")
            else:
                for e in client.responses.create(model="m", input="ping", stream=True):
                    if e.type == "response.output_text.delta":
                        received.append(e.delta)
        assert "".join(received) == "po"
        # the next call is untouched
        assert client.chat.completions.create(model="m", messages=MESSAGES).id
        stats = server.stats()
    assert [(c.status, c.fault) for c in stats.calls] == [(200, "truncate_stream"), (200, None)]


@pytest.mark.sdk
def test_chunk_delay_spaces_the_chunks() -> None:
    spec = ServerSpec(reply=Reply(text="abcd", chunks=4, chunk_delay_ms=50))
    with serving(spec) as server, sdk(server) as client:
        start = time.monotonic()
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        )
        assert text == "abcd"
        assert time.monotonic() - start >= 0.15


# --- bad input, and the server keeps serving ---------------------------------------------------


@pytest.mark.sdk
def test_malformed_request_gets_400_and_that_connection_closes() -> None:
    with serving() as server:
        with raw(server) as sock:
            sock.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
            status, _, body = read_response(sock)
            assert status == 400
            assert json.loads(body)["error"]["type"] == "invalid_request_error"
            assert sock.recv(1024) == b""
        with sdk(server) as client:
            assert client.chat.completions.create(model="m", messages=MESSAGES).id
        assert server.stats().connections == 1  # the malformed connection is not counted


def test_oversized_headers_get_400() -> None:
    with serving() as server:
        with raw(server) as sock:
            sock.sendall(request_bytes("GET", "/v1/models", headers=(("x-big", "a" * 20000),)))
            assert read_response(sock)[0] == 400
            assert sock.recv(1024) == b""
        with raw(server) as sock:
            sock.sendall(request_bytes("GET", "/v1/models"))
            assert read_response(sock)[0] == 200


def test_invalid_json_and_unknown_path_keep_the_connection() -> None:
    with serving() as server, raw(server) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", b"{nope"))
        status, _, body = read_response(sock)
        assert status == 400
        assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
        sock.sendall(request_bytes("POST", "/v1/nowhere", b"{}"))
        assert read_response(sock)[0] == 404
        sock.sendall(request_bytes("POST", "/v1/chat/completions", CHAT_BODY))
        assert read_response(sock)[0] == 200
        stats = server.stats()
    assert statuses(stats) == [400, 200]  # the 404 is not an API call
    assert stats.requests_per_connection == (2,)


def test_connection_close_header_is_honoured() -> None:
    with serving() as server, raw(server) as sock:
        sock.sendall(request_bytes("GET", "/v1/models", headers=(("connection", "close"),)))
        assert read_response(sock)[0] == 200
        assert sock.recv(1024) == b""


# --- control path, lifecycle --------------------------------------------------------------------


@pytest.mark.sdk
def test_control_path_stats_and_reset_are_not_api_traffic() -> None:
    with serving() as server, sdk(server) as client:
        client.chat.completions.create(model="m", messages=MESSAGES)
        with raw(server) as sock:
            sock.sendall(request_bytes("GET", "/_harness/stats"))
            status, _, body = read_response(sock)
            assert status == 200
            assert ServerStats.from_dict(json.loads(body)) == server.stats()
            sock.sendall(request_bytes("POST", "/_harness/reset"))
            assert read_response(sock)[:1] == (200,)
        assert server.stats() == ServerStats()


@pytest.mark.sdk
def test_several_servers_at_once() -> None:
    one = ServerSpec(reply=Reply(text="one"))
    two = ServerSpec(reply=Reply(text="two"), faults=(HttpError(status=503, calls=(1,)),))
    with serving(one) as a, serving(two) as b, sdk(a) as ca, sdk(b) as cb:
        results: dict[str, str] = {}

        def call(name: str, client: openai.OpenAI) -> None:
            done = client.chat.completions.create(model="m", messages=MESSAGES)
            results[name] = done.choices[0].message.content or ""

        threads = [threading.Thread(target=call, args=(n, c)) for n, c in (("a", ca), ("b", cb))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {"a": "one", "b": "two"}
        assert (statuses(a.stats()), statuses(b.stats())) == ([200], [503, 200])
        assert a.port != b.port


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "localhost", "::"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(UsageError, match=re.escape("127.0.0.1")):
        MockServer(ServerSpec(), host=host)


@pytest.mark.sdk
def test_other_loopback_address_and_base_url() -> None:
    with MockServer(ServerSpec(), host="127.0.0.2") as server:
        assert server.base_url == f"http://127.0.0.2:{server.port}/v1"
        with sdk(server) as client:
            assert [m.id for m in client.models.list()] == ["mock-model"]


def test_stop_is_idempotent_and_a_server_cannot_restart() -> None:
    server = MockServer(ServerSpec())
    server.stop()  # never started: nothing to do
    server = MockServer(ServerSpec())
    server.start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        server.start()


def test_port_in_use_is_a_usage_error() -> None:
    with (
        serving() as server,
        pytest.raises(UsageError, match=re.escape(f"cannot listen on 127.0.0.1:{server.port}: ")),
    ):
        MockServer(ServerSpec(), port=server.port).start()


def test_stop_closes_open_connections() -> None:
    server = MockServer(_idle_spec("silent"))
    server.start()
    with raw(server) as sock:
        sock.sendall(request_bytes("GET", "/v1/models"))
        assert read_response(sock)[0] == 200
        wait_for_idle_closes(server, 1)  # now idle-silent: the server holds the socket open
        server.stop()
        assert sock.recv(1024) == b""


# --- framing written by hand (harness/mockserver/wire.py), read back by h11 and the SDK ---------


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    with serving() as server, raw(server) as sock:
        sock.sendall(
            request_bytes("POST", "/v1/chat/completions", CHAT_BODY)
            + request_bytes("GET", "/v1/nowhere")
            + request_bytes("GET", "/v1/models")
        )
        client = h11.Connection(h11.CLIENT)
        answers: list[tuple[int, bytes]] = []
        for _ in range(3):
            client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
            status, body = 0, b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            answers.append((status, body))
            client.start_next_cycle()
        stats = server.stats()
    assert [status for status, _ in answers] == [200, 404, 200]
    assert json.loads(answers[0][1])["choices"][0]["message"]["content"] == "pong"
    assert json.loads(answers[2][1])["data"][0]["id"] == "mock-model"
    assert stats.requests_per_connection == (2,)


def test_http10_stream_is_close_delimited_and_ends_with_fin() -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    with serving() as server, raw(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.0\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        received = b""
        while data := sock.recv(65536):
            received += data
        stats = server.stats()
    head, _, stream = received.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 ",
        b"content-type: text/event-stream",
        b"cache-control: no-cache",
        b"Connection: close",
    ]
    assert stream.startswith(b"data: {") and stream.endswith(b"data: [DONE]\n\n")
    assert statuses(stats) == [200]


def test_a_paused_answer_then_the_next_request_on_the_same_connection() -> None:
    # A chunk-delayed stream is played by a task; the request sent right behind it (already
    # in the server's buffer) must be read and answered after it, in order.
    spec = ServerSpec(reply=Reply(text="abc", chunks=3, chunk_delay_ms=20))
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    with serving(spec) as server, raw(server) as sock:
        sock.sendall(
            request_bytes("POST", "/v1/chat/completions", body)
            + request_bytes("POST", "/v1/chat/completions", CHAT_BODY)
        )
        received = b""
        while not received.endswith(b'"completion_tokens":3,"total_tokens":5}}'):
            received += sock.recv(65536)
        stats = server.stats()
    stream, _, plain = received.partition(b"\r\n0\r\n\r\n")
    assert stream.count(b"data: ") == 6  # role, 3 deltas, finish, [DONE]
    assert plain.startswith(b"HTTP/1.1 200 \r\n")
    assert statuses(stats) == [200, 200]
    assert stats.requests_per_connection == (2,)


# --- hostile clients ---------------------------------------------------------------------------


def test_hostile_bodies_each_get_a_400_on_a_connection_that_stays_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from test_mockserver_request import hostile_bodies

    corpus = hostile_bodies("chat.completions", seed=11, count=150)
    caplog.set_level(logging.INFO, logger="harness.mockserver")
    with serving() as server, raw(server) as sock:
        for body, param in corpus:
            sock.sendall(request_bytes("POST", "/v1/chat/completions", body))
            status, headers, data = read_response(sock)
            assert "connection" not in headers, body[:80]  # kept open for the next one
            if param is not None:
                assert status == 400
                assert json.loads(data)["error"]["param"] == param
            else:
                assert status in (200, 400)
        stats = server.stats()
    rejected = [call for call in stats.calls if call.status == 400]
    lines = [r.getMessage() for r in caplog.records if "answered 400" in r.getMessage()]
    assert (stats.total_calls, stats.connections) == (len(corpus), 1)
    assert len(lines) == len(rejected)  # one line per 400, nothing else
    assert stats.faults_fired == {}


@pytest.mark.sdk
def test_slowloris_connections_get_408_while_normal_requests_are_answered() -> None:
    head = request_bytes("POST", "/v1/chat/completions", CHAT_BODY)[:-2]  # never completes
    stop = threading.Event()
    deadline_s = 5.0
    with MockServer(ServerSpec(), request_timeout_s=deadline_s) as server:
        slow = [socket.create_connection(("127.0.0.1", server.port), timeout=15) for _ in range(50)]
        opened = time.monotonic()
        try:

            def trickle() -> None:  # one byte per connection per round, as slowloris does
                for offset in range(len(head)):
                    for sock in slow:
                        sock.send(head[offset : offset + 1])
                    if stop.wait(0.02):
                        return

            trickler = threading.Thread(target=trickle)
            trickler.start()
            with sdk(server, max_retries=0) as client:
                for _ in range(5):
                    done = client.chat.completions.create(model="m", messages=MESSAGES)
                    assert done.choices[0].message.content == "pong"
            open_ports = server.settle()
            served_s = time.monotonic() - opened
            stop.set()
            trickler.join()
            # Still reading their heads when the SDK's calls were done, unless a loaded machine
            # took the whole deadline over those calls (then the 408s below still show it).
            if served_s < deadline_s - 0.5:
                assert {sock.getsockname()[1] for sock in slow} <= open_ports
            for sock in slow:
                status, headers, data = read_response(sock)
                assert (status, headers["connection"]) == (408, "close")
                assert json.loads(data)["error"]["message"] == (
                    f"The request did not arrive within {deadline_s:g} s."
                )
                assert sock.recv(1024) == b""  # then a FIN
        finally:
            for sock in slow:
                sock.close()
        stats = server.stats()
    assert (stats.total_calls, statuses(stats)) == (5, [200] * 5)


def test_connections_over_the_cap_get_503_and_a_fin() -> None:
    with MockServer(ServerSpec(), max_connections=2) as server, raw(server) as a, raw(server) as b:
        for sock in (a, b):  # answered: both are accepted and counted
            sock.sendall(request_bytes("GET", "/v1/models"))
            assert read_response(sock)[0] == 200
        with raw(server) as third:
            status, headers, data = read_response(third)
            assert (status, headers["connection"]) == (503, "close")
            assert json.loads(data)["error"]["type"] == "server_error"
            assert third.recv(1024) == b""
        assert server.settle() == {a.getsockname()[1], b.getsockname()[1]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connections": 0}, "max_connections 0 is below 1"),
        ({"request_timeout_s": 0.0}, "request timeout 0.0 s is not above 0"),
        ({"call_log_limit": -1}, "call log limit -1 is negative"),
    ],
)
def test_bad_limits_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        MockServer(ServerSpec(), **kwargs)
