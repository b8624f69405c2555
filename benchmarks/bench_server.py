"""Benchmark the mock server against a minimal raw-asyncio static responder.

Not a test: prints non-streaming requests/s and SSE chunks/s with 1, 8 and 64 concurrent
keep-alive clients, for the mock server and for a responder that answers every request with
the same precomputed bytes, and the ratio mock/static (the issue's target is >= 0.7). A third
server, "h11-floor", is the static responder parsing every request with a fresh h11 parser, as
the mock does: no server that parses with h11 can beat it, so mock/h11-floor is the share of
the mock's time spent on its own work rather than on h11.

Both servers run in this process, each on its own event loop thread; the load comes from a
child process (this file with ``--load``) using raw asyncio sockets, so the client's work does
not compete with the server for this interpreter's GIL. Every client connects before the clock
starts; each measurement is bounded by a deadline and a request count. Loopback only. The
servers are measured in turn, ``--runs`` times; the table shows the median of each and the
range (min-max) of the ratio over the runs.

``--core`` measures only the sans-IO answer path, in this process: reading the request body
and filling the answer from its template, in microseconds of this thread's CPU time per call
(the best of many rounds), so a busy machine barely moves it. Use it to compare two versions
of the mock's protocol modules when the throughput figures are too noisy to tell.

    python benchmarks/bench_server.py [--runs 3] [--seconds 2] [--requests 200000] [--core]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import h11

from harness.mockserver import MockServer
from harness.mockserver.request import ApiRequest, parse_api_request
from harness.mockserver.templates import template_for
from harness.scenario import Reply, ServerSpec

CHUNKS = 16
REPLY = Reply(text="benchmark reply text " * 4, chunks=CHUNKS)
BODIES = {
    "json": json.dumps({"model": "m", "messages": [{"role": "user", "content": "ping"}]}),
    "sse": json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "ping"}]}
    ),
}
CONCURRENCY = (1, 8, 64)


# --- the static responder: the floor any asyncio HTTP server pays ---------------------------------


def _static_bytes(mode: str) -> bytes:
    """The exact bytes the mock server sends for one request of ``mode``."""
    parsed = parse_api_request("chat.completions", BODIES[mode].encode())
    assert isinstance(parsed, ApiRequest)
    template = template_for(parsed, REPLY)
    if mode == "json":
        body = template.payload(ident="x", created=0).body
        return (
            b"HTTP/1.1 200 \r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        ) + body
    plan = template.stream(ident="x", created=0)
    frames = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in plan.head + plan.chunks + plan.tail)
    return (
        (b"HTTP/1.1 200 \r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        + frames
        + b"0\r\n\r\n"
    )


class StaticResponder:
    """Answers each complete request (head + content-length body) with fixed bytes.

    With ``parse_with_h11`` it also parses every request with h11: the floor any server pays
    that parses with h11.
    """

    def __init__(self, answer: bytes, *, parse_with_h11: bool = False) -> None:
        self.answer = answer
        self.parse_with_h11 = parse_with_h11
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> StaticResponder:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            buffer = b""
            try:
                while True:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        data = await reader.read(65536)
                        if not data:
                            return
                        buffer += data
                        continue
                    head = buffer[:end].lower()
                    start = head.find(b"content-length:")
                    length = int(head[start + 15 :].split(b"\r\n", 1)[0]) if start >= 0 else 0
                    while len(buffer) < end + 4 + length:
                        buffer += await reader.read(65536)
                    if self.parse_with_h11:
                        _h11_parse(buffer[: end + 4 + length])
                    buffer = buffer[end + 4 + length :]
                    writer.write(self.answer)
                    await writer.drain()
            except (asyncio.CancelledError, ConnectionError):
                pass
            finally:
                tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)


def _h11_parse(request: bytes) -> None:
    """Parse one request with a fresh h11 parser, as the mock server does (it writes its
    answers by hand; see harness/mockserver/wire.py)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    while not isinstance(conn.next_event(), h11.EndOfMessage):
        pass


# --- the load generator (runs in a child process) -----------------------------------------------


async def _client(
    port: int, request: bytes, mode: str, count: int, start: asyncio.Event, stop: list[float]
) -> tuple[int, int]:
    """Send up to ``count`` requests on one keep-alive connection; (responses, SSE chunks).

    Connects, then waits for ``start``; stops at the deadline ``stop[0]`` (set at start)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = chunks = 0
    buffer = b""
    try:
        await start.wait()
        while done < count and time.monotonic() < stop[0]:
            writer.write(request)
            while True:  # read one response
                end = buffer.find(b"\r\n\r\n")
                if end >= 0:
                    if mode == "json":
                        head = buffer[:end].lower()
                        at = head.find(b"content-length:")
                        length = int(head[at + 15 :].split(b"\r\n", 1)[0])
                        if len(buffer) >= end + 4 + length:
                            buffer = buffer[end + 4 + length :]
                            break
                    else:
                        last = buffer.find(b"\r\n0\r\n\r\n", end)
                        if last >= 0:
                            chunks += buffer.count(b"data: ", end, last)
                            buffer = buffer[last + 7 :]
                            break
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection mid-benchmark")
                buffer += data
            done += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return done, chunks


async def _load(
    port: int, mode: str, clients: int, requests: int, seconds: float
) -> dict[str, float]:
    body = BODIES[mode].encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    per_client = max(1, requests // clients)
    start, stop = asyncio.Event(), [0.0]
    tasks = [
        asyncio.create_task(_client(port, request, mode, per_client, start, stop))
        for _ in range(clients)
    ]
    await asyncio.sleep(0.2)  # let every client connect before the clock starts
    began = time.monotonic()
    stop[0] = began + seconds
    start.set()
    results = await asyncio.gather(*tasks)
    elapsed = time.monotonic() - began
    done = sum(r[0] for r in results)
    return {"requests": done, "chunks": sum(r[1] for r in results), "seconds": elapsed}


def _measure(port: int, mode: str, clients: int, requests: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            str(port),
            mode,
            str(clients),
            str(requests),
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


@contextmanager
def _mock() -> Iterator[int]:
    with MockServer(ServerSpec(reply=REPLY)) as server:
        yield server.port


@contextmanager
def _static(mode: str, *, parse_with_h11: bool = False) -> Iterator[int]:
    with StaticResponder(_static_bytes(mode), parse_with_h11=parse_with_h11) as responder:
        yield responder.port


def _core() -> None:
    """Print the CPU time per call of the sans-IO answer path (see the module docstring)."""

    def answer(mode: str, shape: str) -> Callable[[], object]:
        body = BODIES[mode].encode()

        def call() -> object:
            parsed = parse_api_request("chat.completions", body)
            assert isinstance(parsed, ApiRequest)
            template = template_for(parsed, REPLY)
            return getattr(template, shape)(ident="mock000001", created=1)

        return call

    cases = [("json", "payload"), ("sse", "stream_bytes"), ("sse", "stream")]
    print("sans-IO answer path: body parse + template fill, us of CPU per call (best of 60)")
    for mode, shape in cases:
        rounds = timeit.repeat(answer(mode, shape), number=1000, repeat=60, timer=time.thread_time)
        print(f"{mode + ' ' + shape:<26}{min(rounds) * 1000:>8.2f} us", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="measurements per server and load")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration per measurement")
    parser.add_argument("--requests", type=int, default=200_000, help="request cap per measurement")
    parser.add_argument("--core", action="store_true", help="time only the sans-IO answer path")
    parser.add_argument("--load", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.core:
        _core()
        return 0
    if ns.load:
        port, mode, clients, requests, seconds = ns.load
        print(
            json.dumps(
                asyncio.run(_load(int(port), mode, int(clients), int(requests), float(seconds)))
            )
        )
        return 0
    print(f"{ns.runs} runs of {ns.seconds:g} s each; medians, and the range of the ratio")
    print(
        f"{'load':<26}{'mock':>8}{'static':>9}{'mock/static':>18}{'h11-floor':>11}{'mock/floor':>18}"
    )
    worst = 1.0
    for mode, unit in (("json", "req/s"), ("sse", "chunks/s")):
        key = "requests" if mode == "json" else "chunks"
        for clients in CONCURRENCY:
            rates: list[list[float]] = [[], [], []]
            for _ in range(ns.runs):
                for server, out in zip(
                    (_mock(), _static(mode), _static(mode, parse_with_h11=True)), rates, strict=True
                ):
                    with server as port:
                        result = _measure(port, mode, clients, ns.requests, ns.seconds)
                    out.append(result[key] / result["seconds"])
            mock, static, floor = (statistics.median(r) for r in rates)
            to_static = [m / s for m, s in zip(rates[0], rates[1], strict=True)]
            to_floor = [m / f for m, f in zip(rates[0], rates[2], strict=True)]
            worst = min(worst, mock / static)
            label = f"{mode} {unit}, {clients} clients"
            print(
                f"{label:<26}{mock:>8.0f}{static:>9.0f}{_ratio(mock / static, to_static):>18}"
                f"{floor:>11.0f}{_ratio(mock / floor, to_floor):>18}",
                flush=True,
            )
    print(f"worst median mock/static ratio {worst:.2f} (target >= 0.70)")
    return 0


def _ratio(median: float, runs: list[float]) -> str:
    return f"{median:.2f} ({min(runs):.2f}-{max(runs):.2f})"


if __name__ == "__main__":
    sys.exit(main())
