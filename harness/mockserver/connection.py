"""One accepted connection of the mock server: an ``asyncio.Protocol`` around h11.

The connection parses requests with h11, asks :mod:`.protocol` and :mod:`.faults` what to
answer (the decision is sans-IO, made at once when a request is complete), and plays the
:class:`~harness.mockserver.wire.Reply`: written inside ``data_received`` when it has no pause,
or by a task that sleeps between writes. The three ways to end a connection:

* FIN: half-close, then read and discard until the client closes or ``_LINGER_S`` passes.
  Closing a socket that still holds unread bytes makes Linux send RST instead of FIN.
* RST: ``SO_LINGER`` 0, then close.
* silent: stop reading and never write again; the socket stays open until the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Iterable
from typing import Literal

import h11

from harness.mockserver import protocol, wire
from harness.mockserver.faults import IDLE_CLOSE, CallLedger, Ticket
from harness.mockserver.protocol import ApiRequest, Payload, Reject
from harness.result import SERVER_ERROR
from harness.scenario import HttpError, ResetOnReuse, ServerSpec, Stall, TruncateStream

__all__ = ["Connection"]

log = logging.getLogger("harness.mockserver")

_MAX_HEADER_BYTES = 16 * 1024  # h11 raises RemoteProtocolError beyond this: answered with 400
_MAX_BODY_BYTES = 16 * 1024 * 1024
_LINGER_S = 2.0  # how long a FIN-closed connection drains before the server closes it
_ERROR_TYPES = {429: ("requests", "rate_limit_exceeded")}


class Connection(asyncio.Protocol):
    """One accepted socket: parse requests with h11, answer them, end the connection.

    Callbacks, not a task per connection: a request that needs no waiting is parsed, answered
    and written inside ``data_received``, and pipelined requests in the same read follow in
    the same loop. An answer with pauses (latency, stalls, chunk delays) runs as a task while
    reading waits; when it is done the connection picks up where it left off.

    Each request gets a fresh h11 parser fed with the previous one's ``trailing_data`` (h11's
    documented hand-over): the server never calls ``h11.send`` for its answers (see
    :mod:`.wire`), so a parser is used for one request and h11's keep-alive verdict is read
    from the client's state after the request (DONE, or MUST_CLOSE).
    """

    def __init__(
        self, spec: ServerSpec, ledger: CallLedger, serial: int, registry: set[Connection]
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.serial = serial
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.h11 = _parser()
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.starving = False  # the parser is fresh and has no bytes: it can only NEED_DATA
        self.received = 0  # bytes given to this parser
        self.api_requests = 0
        # "": serving; "fin": half-closed, draining until EOF; "silent": never answering
        # again; "closed": the transport is gone or going.
        self.ending: Literal["", "fin", "silent", "closed"] = ""
        self.eof = False  # the client has half-closed its side
        self.task: asyncio.Task[None] | None = None  # an answer with pauses, in progress
        self.idle_timer: asyncio.TimerHandle | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        self.writable: asyncio.Future[None] | None = None  # set while the transport is paused
        self.lost = False  # connection_lost has run: the socket is closed
        self.peer_port = 0
        idle_ms = spec.keepalive.idle_timeout_ms
        self.idle_s = None if idle_ms is None else idle_ms / 1000

    # --- asyncio.Protocol callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_port = peer[1] if isinstance(peer, tuple) else 0
        self.registry.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self.ending:
            return  # draining before a FIN, or silent: what the client sends is discarded
        self._cancel_idle()
        self.starving = False
        self.received += len(data)
        self.h11.receive_data(data)
        if self.task is None:
            self._pump()

    def eof_received(self) -> bool:
        self.eof = True
        if self.ending == "fin":
            return False  # drained: asyncio closes the transport, our FIN is already out
        if self.ending == "silent":
            return True
        self._cancel_idle()
        self.starving = False
        self.h11.receive_data(b"")
        if self.task is None:
            self._pump()
        return True  # the server closes when it has answered

    def connection_lost(self, exc: Exception | None) -> None:
        self.ending = "closed"
        self.lost = True
        self.registry.discard(self)
        self.ledger.forget(self.serial)
        self._cancel_idle()
        if self.linger_timer is not None:
            self.linger_timer.cancel()
        if self.task is not None:
            self.task.cancel()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)  # the reply task sees ending == "closed"

    def pause_writing(self) -> None:
        # The client is not reading: stop reading its requests too, and make a reply task wait.
        assert self.transport is not None
        self.writable = asyncio.get_running_loop().create_future()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None
        if not self.ending:
            self.transport.resume_reading()

    # --- reading ----------------------------------------------------------------------------

    def _pump(self) -> None:
        """Handle h11's events until it needs data, a reply needs to wait, or the end."""
        while self.task is None and not self.ending:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._reject_raw(Reject(400, f"Malformed HTTP request: {exc}."))
                return
            kind = type(event)
            if event is h11.NEED_DATA:
                if self.request is None and not self.h11.trailing_data[0]:
                    self._arm_idle()
                return
            if kind is h11.Data:
                self.body += event.data  # type: ignore[union-attr]
                if len(self.body) > _MAX_BODY_BYTES:
                    self._reject_raw(Reject(413, "Request body too large."))
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h11.EndOfMessage:
                assert self.request is not None
                self._play(self._answer(self.request, bytes(self.body)))
                if self.starving:  # a fresh parser with no bytes: asking it costs a parse
                    self._arm_idle()
                    return
            else:  # ConnectionClosed: the client closed an idle connection
                self._close()
                return

    def _on_request(self, request: h11.Request) -> None:
        # h11 bounds only a head that arrives in pieces; bound a whole one here too (only
        # possible when the parser has been given more than the limit).
        if self.received > _MAX_HEADER_BYTES and _head_size(request) > _MAX_HEADER_BYTES:
            self._reject_raw(
                Reject(400, f"Request headers too large; the limit is {_MAX_HEADER_BYTES} bytes.")
            )
            return
        self.request = request
        if self.h11.they_are_waiting_for_100_continue:  # e.g. curl with a large body
            interim = h11.InformationalResponse(status_code=100, headers=[])
            self._write(self.h11.send(interim) or b"")

    def _next_cycle(self) -> None:
        """Hand the bytes after this request to a fresh parser for the next one."""
        data, closed = self.h11.trailing_data
        self.h11 = _parser()
        self.request = None
        self.body = bytearray()
        self.starving = not (data or closed)
        self.received = len(data)
        if data:
            self.h11.receive_data(data)
        if closed:
            self.h11.receive_data(b"")

    # --- answering --------------------------------------------------------------------------

    def _answer(self, request: h11.Request, body: bytes) -> _Answer:
        """What to send for a complete request (decided at once; played by :meth:`_play`)."""
        framing = wire.framing_for(
            self.h11.their_http_version or b"1.1",
            keep_alive=self.h11.their_state is h11.DONE,
            method=request.method,
        )
        target = request.target.decode("latin-1")
        endpoint = protocol.route(request.method.decode("latin-1"), target)
        if isinstance(endpoint, Reject):
            payload = protocol.error_payload(endpoint)
        elif endpoint == "stats":
            payload = protocol.json_payload(200, self.ledger.snapshot().to_dict())
        elif endpoint == "reset":
            self.ledger.reset()
            payload = protocol.json_payload(200, {"ok": True})
        else:
            return self._api(endpoint, request, target, body, framing)
        return _Answer(wire.payload_reply(payload, framing), None)

    def _api(
        self,
        endpoint: protocol.Endpoint,
        request: h11.Request,
        target: str,
        body: bytes,
        framing: wire.Framing,
    ) -> _Answer:
        parsed: ApiRequest | Reject | None = None
        if endpoint == "chat.completions" or endpoint == "responses":
            parsed = protocol.parse_api_request(endpoint, body)
        ticket = self.ledger.begin(
            socket=self.serial,
            path=target.split("?", 1)[0],
            stream=isinstance(parsed, ApiRequest) and parsed.stream,
            retry_count=_retry_count(request.headers),
            reused=self.api_requests > 0,
            eligible=not isinstance(parsed, Reject),
        )
        self.api_requests += 1
        return _Answer(_api_reply(self.spec, ticket, parsed, framing), ticket)

    def _play(self, answer: _Answer) -> None:
        """Send an answer now if it has no pauses, else in a task; then end or go on."""
        steps = answer.reply.steps
        if not steps or (len(steps) == 1 and type(steps[0]) is bytes):
            self._record(answer, answer.reply.status if steps else 0)
            for step in steps:
                self._write(step)  # type: ignore[arg-type]
            self._after(answer.reply.end)
            return
        self.task = asyncio.get_running_loop().create_task(self._play_slowly(answer))

    async def _play_slowly(self, answer: _Answer) -> None:
        steps, status_sent = answer.reply.steps, 0
        last = max((i for i, step in enumerate(steps) if type(step) is bytes), default=-1)
        try:
            for number, step in enumerate(steps):
                if type(step) is float:
                    await asyncio.sleep(step)
                    continue
                if self.ending == "closed":
                    return
                status_sent = answer.reply.status
                if number == last:
                    self._record(answer, status_sent)
                self._write(step)  # type: ignore[arg-type]
                if self.writable is not None:
                    await self.writable
        except asyncio.CancelledError:
            return  # the connection was lost, or the server is stopping: nothing to send
        except Exception:
            # A bug in the mock, not the client's doing: count it so the run's verdict says so.
            log.exception("mock server: unexpected error on connection %d", self.serial)
            self.ledger.note(SERVER_ERROR)
            self.abort()
            return
        finally:
            self._record(answer, status_sent)  # no-op unless the answer was cut short
            self.task = None
        self._after(answer.reply.end)
        if self.task is None and not self.ending:
            self._pump()

    def _record(self, answer: _Answer, status: int) -> None:
        """Record the call's outcome. Called before its last byte leaves (or before it is
        dropped), so a client that has its answer also finds the call in ``stats()``."""
        if answer.ticket is not None and not answer.recorded:
            answer.recorded = True
            self.ledger.finish(answer.ticket, status)

    def _after(self, end: wire.End) -> None:
        if end == "keep":
            self._next_cycle()  # _pump's loop (or the reply task) goes on with it
        else:
            self._end(end)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _reject_raw(self, reject: Reject) -> None:
        """Answer a request h11 could not parse (its state machine is unusable now), and end."""
        payload = protocol.error_payload(reject)
        self._write(
            wire.response_head(
                reject.status, payload.headers, length=len(payload.body), close=True, chunked=True
            )
            + payload.body
        )
        self._end("fin")

    # --- ending -----------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self.idle_s is not None and not self.ending:
            self._cancel_idle()
            self.idle_timer = asyncio.get_running_loop().call_later(self.idle_s, self._on_idle)

    def _cancel_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _on_idle(self) -> None:
        self.idle_timer = None
        if self.task is None and not self.ending:
            self.ledger.note(IDLE_CLOSE)
            self._end(self.spec.keepalive.close)

    def reap_if_due(self, now: float) -> bool:
        """Run the idle close now if its deadline (loop time) is ``now`` or earlier, as the
        timer would have; True if it ran. For :meth:`MockServer.settle`."""
        timer = self.idle_timer
        if timer is None or timer.when() > now:
            return False
        timer.cancel()
        self._on_idle()
        return True

    @property
    def is_open(self) -> bool:
        """The server still considers this connection open: serving, or silent."""
        return not self.lost and self.ending in ("", "silent")

    @property
    def close_written(self) -> bool:
        """Its FIN or RST has left (or it is not closing): nothing of its end is pending."""
        if self.lost or self.ending in ("", "silent"):
            return True
        assert self.transport is not None
        # write_eof() sends the FIN once the write buffer is empty; close() and abort() close
        # the socket in connection_lost, a loop step later.
        transport = self.transport
        return (
            self.ending == "fin"
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def _end(self, how: Literal["fin", "rst", "silent"]) -> None:
        if self.ending:
            return
        self._cancel_idle()
        if how == "rst":
            self.abort(reset=True)
        elif how == "silent":
            # Silent: keep the socket open but never read or answer on it again.
            assert self.transport is not None
            self.ending = "silent"
            self.transport.pause_reading()
        else:
            self._close_fin()

    def _close_fin(self) -> None:
        """Half-close, then drain what the client still sends until it closes or the linger
        time passes, so the final close() cannot turn into a RST. A client that keeps its half
        open (an abandoned pooled socket) sits in CLOSE_WAIT meanwhile: what the harness
        measures."""
        assert self.transport is not None
        self.ending = "fin"
        if self.eof or not self.transport.can_write_eof():
            self.transport.close()  # nothing more can come: close() flushes and sends FIN
            return
        self.transport.write_eof()
        self.linger_timer = asyncio.get_running_loop().call_later(_LINGER_S, self.transport.close)

    def _close(self) -> None:
        self.ending = "closed"
        assert self.transport is not None
        self.transport.close()

    def abort(self, *, reset: bool = False) -> None:
        """Drop the connection now; with ``reset``, make the kernel send RST."""
        assert self.transport is not None
        self.ending = "closed"
        if reset:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def shutdown(self) -> asyncio.Task[None] | None:
        """Close for a server stop; returns the reply task to wait for, if one runs."""
        task = self.task
        if task is not None:
            task.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self._close()
        return task


class _Answer:
    """A decided reply and the call it answers (None: not an API call), until recorded."""

    __slots__ = ("recorded", "reply", "ticket")

    def __init__(self, reply: wire.Reply, ticket: Ticket | None) -> None:
        self.reply = reply
        self.ticket = ticket
        self.recorded = False


def _api_reply(
    spec: ServerSpec, ticket: Ticket, parsed: ApiRequest | Reject | None, framing: wire.Framing
) -> wire.Reply:
    """The answer to API call ``ticket``: the fault layer's choice applied to the protocol's."""
    fault = ticket.fault
    if isinstance(fault, ResetOnReuse):
        return wire.reply_without_answer(fault.mode)
    delay_ms = spec.latency_ms
    if isinstance(fault, Stall) and fault.at == "first_byte":
        delay_ms += fault.ms
    delay_s = delay_ms / 1000
    if isinstance(parsed, Reject):
        return wire.payload_reply(protocol.error_payload(parsed), framing, delay_s=delay_s)
    if isinstance(fault, HttpError):
        return wire.payload_reply(_http_error(fault), framing, delay_s=delay_s)
    if parsed is None:
        return wire.payload_reply(protocol.models_payload(), framing, delay_s=delay_s)
    stall_s = fault.ms / 1000 if isinstance(fault, Stall) and fault.at != "first_byte" else 0.0
    ident, created = f"mock{ticket.index:06d}", int(time.time())
    if not parsed.stream:
        payload = protocol.api_payload(parsed, spec.reply, ident=ident, created=created)
        return wire.payload_reply(payload, framing, delay_s=delay_s, pause_s=stall_s)
    cut = fault.after_chunks if isinstance(fault, TruncateStream) else None
    if not stall_s and cut is None and (not spec.reply.chunk_delay_ms or spec.reply.chunks <= 1):
        data = protocol.api_stream_bytes(parsed, spec.reply, ident=ident, created=created)
        return wire.whole_stream_reply(data, framing, delay_s=delay_s)
    return wire.stream_reply(
        protocol.api_stream(parsed, spec.reply, ident=ident, created=created),
        framing,
        delay_s=delay_s,
        chunk_delay_s=spec.reply.chunk_delay_ms / 1000,
        stall_s=stall_s,
        cut=cut,
    )


def _parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)


def _head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)


def _retry_count(headers: Iterable[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"x-stainless-retry-count":
            try:
                return max(0, int(value))
            except ValueError:
                return 0  # not the SDK's header; treat it as a first attempt
    return 0


def _http_error(fault: HttpError) -> Payload:
    kind, code = _ERROR_TYPES.get(
        fault.status, ("server_error" if fault.status >= 500 else "invalid_request_error", None)
    )
    reject = Reject(fault.status, f"Mock server fault: HTTP {fault.status}.", type=kind, code=code)
    return protocol.error_payload(reject, retry_after_s=fault.retry_after_s)
