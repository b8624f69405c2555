"""One accepted connection of the mock server: a thin asyncio driver around the machine.

:class:`~harness.mockserver.machine.ConnectionMachine` (sans-IO) decides everything: how to
parse, when a deadline ends a connection, how it ends. This module turns asyncio's callbacks
into the machine's events and performs the actions it returns (write, set the deadline timer,
pause a reply, FIN, close, RST, go silent, log, count); what a complete request is answered
with is :class:`~harness.mockserver.answer.Responder`'s choice. The three ways to end:

* FIN: half-close, then read and discard until the client closes or ``_LINGER_S`` passes.
  Closing a socket that still holds unread bytes makes Linux send RST instead of FIN.
* RST: ``SO_LINGER`` 0, then close.
* silent: stop reading and never write again; the socket stays open until the server stops.

Callbacks, not a task per connection: an answer without pauses is written inside
``data_received``; a pause is a timer. An exception in the machine or the driver is a bug in
the mock: one log line, counted as ``server_error``, and the connection is dropped (one in
``respond`` gets a 500 first, see :mod:`.machine`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

from harness.mockserver.answer import Responder
from harness.mockserver.faults import CallLedger
from harness.mockserver.machine import (
    CLOSE,
    HALF_CLOSE,
    RESET,
    SILENCE,
    Action,
    ConnectionMachine,
    Count,
    Log,
    Pause,
    SetTimer,
    State,
    Write,
)
from harness.result import SERVER_ERROR
from harness.schema import ServerSpec

__all__ = ["Connection"]

log = logging.getLogger("harness.mockserver")

_LINGER_S = 2.0  # how long a FIN-closed connection drains before the server closes it
_OPEN = frozenset({State.IDLE, State.READING, State.ANSWERING, State.SILENT})
_READING = frozenset({State.IDLE, State.READING, State.ANSWERING, State.DRAINING})


class Connection(asyncio.Protocol):
    """One accepted socket: asyncio callbacks in, the machine's actions out."""

    def __init__(
        self,
        spec: ServerSpec,
        ledger: CallLedger,
        serial: int,
        registry: set[Connection],
        *,
        max_connections: int,
        request_timeout_s: float,
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.serial = serial
        self.registry = registry
        self.max_connections = max_connections
        idle_ms = spec.keepalive.idle_timeout_ms
        self.machine = ConnectionMachine(
            Responder(spec, ledger, serial),
            idle_s=None if idle_ms is None else idle_ms / 1000,
            idle_close=spec.keepalive.close,
            request_timeout_s=request_timeout_s,
            linger_s=_LINGER_S,
        )
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None  # the machine's deadline
        self.pause: asyncio.TimerHandle | None = None  # a pause inside a reply
        self.writing_paused = False
        self.step_owed = False  # a pause ended while the client was not reading
        self.lost = False  # connection_lost has run: the socket is closed
        self.failed = False  # a bug was logged; the connection is being dropped
        self.peer_port = 0

    # --- asyncio.Protocol callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        self.peer_port = peer[1] if isinstance(peer, tuple) else 0
        over = len(self.registry) >= self.max_connections
        self.registry.add(self)
        now = self.loop.time()
        if over:
            self._handle(lambda: self.machine.refuse(now, self.max_connections))
        else:
            self._handle(lambda: self.machine.start(now))

    def data_received(self, data: bytes) -> None:
        assert self.loop is not None
        try:
            self._run(self.machine.data(data, self.loop.time()))
        except Exception as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        assert self.loop is not None
        now = self.loop.time()
        self._handle(lambda: self.machine.eof(now))
        return True  # the machine says when to close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.registry.discard(self)
        self.ledger.forget(self.serial)
        for handle in (self.timer, self.pause):
            if handle is not None:
                handle.cancel()
        self.timer = self.pause = None
        if not self.failed:
            self._handle(self.machine.lost)

    def pause_writing(self) -> None:
        # The client is not reading: stop reading its requests too, and hold a reply's pauses.
        assert self.transport is not None
        self.writing_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.writing_paused = False
        if self.machine.state in _READING:
            self.transport.resume_reading()
        if self.step_owed:
            self.step_owed = False
            self._step()

    # --- for the server ---------------------------------------------------------------------

    def reap_if_due(self, now: float) -> bool:
        """Run the idle close now if its deadline is ``now`` or earlier, as the timer would
        have; True if it ran. For :meth:`MockServer.settle`."""
        if self.lost or self.machine.state is not State.IDLE:
            return False
        self._handle(lambda: self.machine.settle(now))
        return self.machine.state is not State.IDLE

    @property
    def is_open(self) -> bool:
        """The server still considers this connection open: serving, or silent."""
        return not self.lost and self.machine.state in _OPEN

    @property
    def close_written(self) -> bool:
        """Its FIN or RST has left (or it is not closing): nothing of its end is pending."""
        if self.lost or self.machine.state in _OPEN:
            return True
        transport = self.transport
        assert transport is not None
        # write_eof() sends the FIN once the write buffer is empty; close() and abort() close
        # the socket in connection_lost, a loop step later.
        return (
            self.machine.state is State.DRAINING
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def shutdown(self) -> None:
        """Close for a server stop, recording a reply that is cut short."""
        if self.pause is not None:
            self.pause.cancel()
            self.pause = None
        if self.transport is not None and not self.transport.is_closing() and not self.failed:
            self._handle(self.machine.stop)

    def abort(self) -> None:
        """Drop the connection now."""
        assert self.transport is not None
        self.transport.abort()

    # --- performing actions -----------------------------------------------------------------

    def _handle(self, event: Callable[[], list[Action]]) -> None:
        try:
            self._run(event())
        except Exception as exc:
            self._fail(exc)

    def _run(self, actions: list[Action]) -> None:
        transport = self.transport
        assert transport is not None
        for action in actions:
            kind = type(action)
            if kind is Write:
                transport.write(action.data)  # type: ignore[union-attr]
            elif kind is SetTimer:
                self._set_timer(action.at)  # type: ignore[union-attr]
            elif kind is Pause:
                assert self.loop is not None
                self.pause = self.loop.call_later(action.seconds, self._pause_over)  # type: ignore[union-attr]
            elif kind is Log:
                log.log(action.level, "mock server: connection %d: %s", self.serial, action.message)  # type: ignore[union-attr]
            elif kind is Count:
                self.ledger.note(action.kind)  # type: ignore[union-attr]
            else:
                self._end(action)

    def _end(self, action: Action) -> None:
        transport = self.transport
        assert transport is not None
        if action is HALF_CLOSE and transport.can_write_eof():
            transport.write_eof()  # then drain: reading goes on
        elif action is HALF_CLOSE or action is CLOSE:
            transport.close()
        elif action is RESET:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif action is SILENCE:
            transport.pause_reading()
        else:
            raise RuntimeError(f"unknown action {action!r}")

    def _set_timer(self, at: float | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if at is not None:
            assert self.loop is not None
            self.timer = self.loop.call_at(at, self._deadline)

    def _deadline(self) -> None:
        self.timer = None
        assert self.loop is not None
        now = self.loop.time()
        self._handle(lambda: self.machine.deadline_reached(now))

    def _pause_over(self) -> None:
        self.pause = None
        if self.writing_paused:
            self.step_owed = True  # resume_writing() goes on
        else:
            self._step()

    def _step(self) -> None:
        assert self.loop is not None
        now = self.loop.time()
        self._handle(lambda: self.machine.step(now))

    def _fail(self, exc: Exception) -> None:
        """A bug in the mock, not the client's doing: one line, counted, connection dropped."""
        log.error("mock server: connection %d: unexpected error: %r", self.serial, exc)
        self.ledger.note(SERVER_ERROR)
        self.failed = True
        if self.transport is not None and not self.lost:
            self.transport.abort()
