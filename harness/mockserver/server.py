"""The mock server's socket layer: asyncio + h11 around the sans-IO core.

Each :class:`MockServer` runs its own event loop in a daemon thread, so several can serve at
once in one process and a blocking caller (the sync openai SDK) can share the process. What to
answer comes from :mod:`harness.mockserver.protocol`, which fault a call gets from
:mod:`harness.mockserver.faults`; this module only moves bytes and decides how a connection
ends. The three ways to end one (see ARCHITECTURE.md, measured facts):

* FIN: half-close, then read and discard until the client closes or ``_LINGER_S`` passes.
  Closing a socket that still holds unread bytes makes Linux send RST instead of FIN.
* RST: ``SO_LINGER`` 0, then close.
* silent: stop reading and never write again; the socket stays open until the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Literal

import h11

from harness.errors import UsageError
from harness.mockserver import protocol
from harness.mockserver.faults import IDLE_CLOSE, CallLedger, Ticket
from harness.mockserver.protocol import ApiRequest, Payload, Reject
from harness.result import ServerStats
from harness.scenario import HttpError, ResetOnReuse, ServerSpec, Stall, TruncateStream

__all__ = ["MockServer", "check_loopback"]

log = logging.getLogger("harness.mockserver")

_READ_SIZE = 65536
_MAX_HEADER_BYTES = 16 * 1024  # h11 raises RemoteProtocolError beyond this: answered with 400
_MAX_BODY_BYTES = 16 * 1024 * 1024
_LINGER_S = 2.0  # how long a FIN-closed connection drains before the server closes it
_ERROR_TYPES = {429: ("requests", "rate_limit_exceeded")}


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback IP address (127.0.0.0/8 or ::1), else UsageError."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise UsageError(f"cannot serve on {host!r}: not an IP address; use 127.0.0.1") from exc
    if not address.is_loopback:
        raise UsageError(f"refusing to serve on {host!r}: the mock server binds to loopback only"
                         " (127.0.0.0/8 or ::1); use 127.0.0.1")
    return host


class MockServer:
    """A fake OpenAI API on loopback that misbehaves as its :class:`ServerSpec` says.

    Lifecycle: ``start()`` once (returns when listening), ``stop()`` any number of times.
    """

    def __init__(self, spec: ServerSpec, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.host = check_loopback(host)
        self.port = port
        self._ledger = CallLedger(spec.faults, clock)
        self._state: Literal["new", "running", "stopped"] = "new"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: OSError | None = None
        self._listening = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._serials = itertools.count(1)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def __repr__(self) -> str:
        return f"<MockServer {self.base_url} {self._state}>"

    def start(self) -> None:
        """Listen and serve in a daemon thread; return once the socket is listening."""
        if self._state != "new":
            raise RuntimeError(f"cannot start a MockServer that is {self._state}; make a new one")
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(ready),),
                                        name=f"mockserver-{self.host}:{self.port}", daemon=True)
        self._state = "running"
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._state = "stopped"
            raise UsageError(f"cannot listen on {self.host}:{self.port}: "
                             f"{self._startup_error.strerror}; pick another port") \
                from self._startup_error
        if not self._listening:  # the thread died of something else; it reported it
            self.stop()
            raise RuntimeError("the mock server's thread failed before listening")

    def stop(self) -> None:
        """Close the listener and every connection, and join the thread. Idempotent."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._loop and self._stopping:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if thread is not None:
            thread.join()
        self._state = "stopped"

    def __enter__(self) -> MockServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stats(self) -> ServerStats:
        """A frozen snapshot of the server's counts; safe from any thread."""
        return self._ledger.snapshot()

    def reset(self) -> None:
        """Zero the counters and the call index; safe from any thread."""
        self._ledger.reset()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(self._on_connect, self.host, self.port,
                                                backlog=1024)
            self.port = server.sockets[0].getsockname()[1]
            self._listening = True
        except OSError as exc:
            self._startup_error = exc
            return
        finally:
            ready.set()  # whatever happened, start() must not wait forever
        await self._stopping.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        # Handlers end by themselves when cancelled (they log unexpected errors), so this
        # gather only waits; it has no exceptions to lose.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()
        for _ in range(3):  # let the transports' connection_lost callbacks close the sockets
            await asyncio.sleep(0)

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        assert self._stopping is not None
        conn = _Connection(self.spec, self._ledger, reader, writer, next(self._serials),
                           self._stopping)
        try:
            await conn.run()
        except asyncio.CancelledError:
            # Only stop() cancels handlers. End quietly: asyncio's start_server logs a handler
            # task that ends cancelled as an error.
            pass
        except (ConnectionError, TimeoutError):
            pass  # the client went away mid-exchange: an ordinary end for a connection
        except Exception:
            log.exception("mock server: unexpected error on connection %d", conn.serial)
        finally:
            self._tasks.discard(task)
            conn.close()


@dataclass
class _Incoming:
    request: h11.Request
    body: bytes

    @property
    def target(self) -> str:
        return str(self.request.target.decode("latin-1"))

    def header(self, name: bytes) -> str | None:
        for key, value in self.request.headers:
            if key == name:
                return str(value.decode("latin-1"))
        return None


class _Connection:
    """One accepted socket: read requests with h11, answer them, end the connection."""

    def __init__(self, spec: ServerSpec, ledger: CallLedger, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, serial: int, stopping: asyncio.Event) -> None:
        self.spec = spec
        self.ledger = ledger
        self.reader = reader
        self.writer = writer
        self.serial = serial
        self.stopping = stopping
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self.api_requests = 0
        self.status_sent = 0
        self.pending: Ticket | None = None  # the API call being answered, until recorded
        idle_ms = spec.keepalive.idle_timeout_ms
        self.idle_s = None if idle_ms is None else idle_ms / 1000

    async def run(self) -> None:
        while True:
            incoming = await self._next_request()
            if incoming is None:
                return
            if not await self._answer(incoming):
                return
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                await self._close_fin()  # e.g. the client sent `Connection: close`
                return
            self.h11.start_next_cycle()

    # --- reading ---------------------------------------------------------------------------

    async def _next_request(self) -> _Incoming | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._send_raw_error(Reject(400, f"Malformed HTTP request: {exc}."))
                return None
            if event is h11.NEED_DATA:
                idle = request is None and not self.h11.trailing_data[0]
                data = await self._read(idle=idle)
                if data is None:
                    return None
                self.h11.receive_data(data)
            elif isinstance(event, h11.Request):
                # h11 bounds only a head that arrives in pieces; bound a whole one here too.
                if _head_size(event) > _MAX_HEADER_BYTES:
                    await self._send_raw_error(Reject(
                        400, f"Request headers too large; the limit is {_MAX_HEADER_BYTES} bytes."))
                    return None
                request = event
                if self.h11.they_are_waiting_for_100_continue:  # e.g. curl with a large body
                    interim = h11.InformationalResponse(status_code=100, headers=[])
                    await self._write(self.h11.send(interim))
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY_BYTES:
                    await self._send_raw_error(Reject(413, "Request body too large."))
                    return None
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return _Incoming(request, bytes(body))
            else:  # ConnectionClosed: the client closed an idle connection
                return None

    async def _read(self, *, idle: bool) -> bytes | None:
        """Bytes from the client (b"" at EOF); None when the idle timeout ended the connection."""
        if not idle or self.idle_s is None:
            return await self.reader.read(_READ_SIZE)
        try:
            return await asyncio.wait_for(self.reader.read(_READ_SIZE), self.idle_s)
        except TimeoutError:
            self.ledger.note(IDLE_CLOSE)
            await self._end(self.spec.keepalive.close)
            return None

    # --- answering -------------------------------------------------------------------------

    async def _answer(self, incoming: _Incoming) -> bool:
        """Answer one request; False when the connection has been ended."""
        endpoint = protocol.route(incoming.request.method.decode("latin-1"), incoming.target)
        if isinstance(endpoint, Reject):
            await self._send(protocol.error_payload(endpoint))
        elif endpoint == "stats":
            await self._send(protocol.json_payload(200, self.ledger.snapshot().to_dict()))
        elif endpoint == "reset":
            self.ledger.reset()
            await self._send(protocol.json_payload(200, {"ok": True}))
        else:
            return await self._api(endpoint, incoming)
        return True

    async def _api(self, endpoint: str, incoming: _Incoming) -> bool:
        parsed: ApiRequest | Reject | None = None
        if endpoint in ("chat.completions", "responses"):
            parsed = protocol.parse_api_request(endpoint, incoming.body)  # type: ignore[arg-type]
        ticket = self.ledger.begin(
            socket=self.serial, path=incoming.target.split("?", 1)[0],
            stream=isinstance(parsed, ApiRequest) and parsed.stream,
            retry_count=_retry_count(incoming.header(b"x-stainless-retry-count")),
            reused=self.api_requests > 0, eligible=not isinstance(parsed, Reject),
        )
        self.api_requests += 1
        self.status_sent = 0
        self.pending = ticket
        try:
            return await self._api_reply(ticket, parsed)
        finally:
            self._record()

    def _record(self) -> None:
        """Record the pending call's outcome. Called before its last byte leaves (or before it
        is dropped), so a client that has its answer also finds the call in ``stats()``."""
        if self.pending is not None:
            self.ledger.finish(self.pending, self.status_sent)
            self.pending = None

    async def _api_reply(self, ticket: Ticket, parsed: ApiRequest | Reject | None) -> bool:
        fault = ticket.fault
        if isinstance(fault, ResetOnReuse):
            self._record()
            await self._end(fault.mode)
            return False
        delay_ms = self.spec.latency_ms
        if isinstance(fault, Stall) and fault.at == "first_byte":
            delay_ms += fault.ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if isinstance(parsed, Reject):
            await self._send(protocol.error_payload(parsed))
        elif isinstance(fault, HttpError):
            await self._send(_http_error(fault))
        elif parsed is None:
            await self._send(protocol.models_payload())
        else:
            stall_s = fault.ms / 1000 if isinstance(fault, Stall) and fault.at != "first_byte" \
                else 0.0
            ident, created = f"mock{ticket.index:06d}", int(time.time())
            if not parsed.stream:
                payload = protocol.api_payload(parsed, self.spec.reply, ident=ident,
                                               created=created)
                await self._send(payload, pause_s=stall_s)
                return True
            plan = protocol.api_stream(parsed, self.spec.reply, ident=ident, created=created)
            cut = fault.after_chunks if isinstance(fault, TruncateStream) else None
            return await self._stream(plan, stall_s, cut)
        return True

    async def _send(self, payload: Payload, *, pause_s: float = 0.0) -> None:
        """A complete response; ``pause_s`` waits between its headers and its body."""
        length = ("content-length", str(len(payload.body)))
        head = self.h11.send(h11.Response(status_code=payload.status,
                                          headers=[*payload.headers, length]))
        self.status_sent = payload.status
        if pause_s > 0:
            await self._write(head)
            await asyncio.sleep(pause_s)
            head = b""
        await self._write(head + self.h11.send(h11.Data(data=payload.body))
                          + self.h11.send(h11.EndOfMessage()), last=True)

    async def _stream(self, plan: protocol.StreamPlan, stall_s: float, cut: int | None) -> bool:
        """An SSE response; ``stall_s`` after the first chunk; ``cut``: chunks before a FIN.

        Frames with no pause between them leave in one write (as one HTTP chunk): the client
        sees the same event stream, and the server spends one syscall, not one per frame.
        """
        self.status_sent = 200
        out = self.h11.send(h11.Response(status_code=200, headers=list(protocol.SSE_HEADERS)))
        burst = list(plan.head)
        delay_s = self.spec.reply.chunk_delay_ms / 1000
        pending = 0.0  # the pause owed before the next frame
        for number, frame in enumerate(plan.chunks if cut is None else plan.chunks[:cut]):
            pause = pending + (delay_s if number else 0.0)
            if pause > 0:
                await self._write(out + self._data(burst))
                out, burst = b"", []
                await asyncio.sleep(pause)
            burst.append(frame)
            pending = stall_s if number == 0 else 0.0
        if cut is not None:  # no tail, no terminating chunk: the client sees a cut body
            await self._write(out + self._data(burst))
            self._record()
            await self._close_fin()
            return False
        if pending > 0:
            await self._write(out + self._data(burst))
            out, burst = b"", []
            await asyncio.sleep(pending)
        burst.extend(plan.tail)
        await self._write(out + self._data(burst) + self.h11.send(h11.EndOfMessage()), last=True)
        return True

    def _data(self, frames: list[bytes]) -> bytes:
        return self.h11.send(h11.Data(data=b"".join(frames))) if frames else b""

    async def _write(self, data: bytes, *, last: bool = False) -> None:
        if last:
            self._record()
        self.writer.write(data)
        await self.writer.drain()

    async def _send_raw_error(self, reject: Reject) -> None:
        """Answer a request h11 could not parse (its state machine is unusable now), and end."""
        payload = protocol.error_payload(reject)
        phrase = HTTPStatus(reject.status).phrase
        head = (f"HTTP/1.1 {reject.status} {phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload.body)}\r\nconnection: close\r\n\r\n")
        await self._write(head.encode() + payload.body)
        await self._close_fin()

    # --- ending ----------------------------------------------------------------------------

    async def _end(self, how: Literal["fin", "rst", "silent"]) -> None:
        if how == "fin":
            await self._close_fin()
        elif how == "rst":
            self._abort_rst()
        else:
            # Silent: keep the socket open but never read or answer on it again.
            transport = self.writer.transport
            if isinstance(transport, asyncio.ReadTransport):
                transport.pause_reading()
            await self.stopping.wait()

    async def _close_fin(self) -> None:
        if self.writer.transport.is_closing():
            return
        if self.writer.can_write_eof():
            self.writer.write_eof()
        # Drain whatever the client still sends, so the final close() cannot turn into a RST.
        # A client that keeps its half open (an abandoned pooled socket) is left after the
        # linger time; its side then sits in CLOSE_WAIT, which is what the harness measures.
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self._discard_until_eof(), _LINGER_S)
        self.writer.close()

    async def _discard_until_eof(self) -> None:
        while await self.reader.read(_READ_SIZE):
            pass

    def _abort_rst(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        if not self.writer.transport.is_closing():
            self.writer.close()


def _head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)


def _retry_count(value: str | None) -> int:
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0  # not the SDK's header; treat it as a first attempt


def _http_error(fault: HttpError) -> Payload:
    kind, code = _ERROR_TYPES.get(fault.status, (
        "server_error" if fault.status >= 500 else "invalid_request_error", None))
    reject = Reject(fault.status, f"Mock server fault: HTTP {fault.status}.", type=kind, code=code)
    return protocol.error_payload(reject, retry_after_s=fault.retry_after_s)
