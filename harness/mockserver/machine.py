"""Sans-IO state machine of one mock-server connection: events in, actions out.

Theory of operation
-------------------
One :class:`ConnectionMachine` per accepted socket. The driver (:mod:`.connection`) feeds it
events, each with the loop's clock reading ``now``: bytes received, EOF, the deadline reached,
a reply's pause over, settle, stop, the socket lost. Each event returns the list of
:data:`Action` values the driver performs in order: write bytes, set the one deadline timer,
pause a reply, half-close (FIN, then drain), close, reset (RST), go silent, log a line, count
an event. Nothing here touches a socket, a loop or a clock, so every path is tested with bytes
alone (tests/test_mockserver_machine.py), as h11 is.

States, and the moves each event may make, are in :data:`TRANSITIONS`::

    IDLE --bytes--> READING --request complete--> ANSWERING --reply done, keep--> IDLE
    ANSWERING --reply done, fin--> DRAINING --EOF or linger deadline--> CLOSED
    ANSWERING --reply done, rst--> CLOSED;  --reply done, silent--> SILENT
    IDLE --idle deadline, or settle past it--> DRAINING | CLOSED | SILENT (keepalive.close)
    READING --request deadline (408), bad bytes (400), body too large (413)--> DRAINING

Requests are parsed by h11, a fresh parser per request fed with the previous one's
``trailing_data`` (h11's documented hand-over; pipelined requests are answered in order).
What to answer is the injected ``respond``'s choice (:mod:`.answer`, sans-IO too), a
:class:`~harness.mockserver.wire.Reply` whose steps are bytes to write or seconds to pause.
Bytes that arrive while a reply plays wait in the parser. The call is recorded just before
its last byte is written, or when the connection ends with the reply cut short.

The machine keeps one deadline, whose meaning depends on the state: in IDLE the keep-alive
idle timeout (``idle_s``; None: never; before the first request at least
``request_timeout_s``), in READING the time the whole request may take from
its first byte (``request_timeout_s``: a slowloris client trickling a head gets 408), in
DRAINING the linger after a FIN (a socket closed with unread bytes sends RST, not FIN, so the
server drains until the client closes or the linger ends). An exception raised by
``respond`` is a bug in the mock: the client gets a 500 and the driver logs one line and
counts it as ``server_error``.

Why one module of 500 lines: the transition table, the states it names and the handlers that
enforce it are one unit (as in h11's ``_state.py``); split, a reader could no longer check a
handler against its row of the table.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Final, NamedTuple, Protocol

import h11

from harness.mockserver import wire
from harness.mockserver.faults import IDLE_CLOSE
from harness.mockserver.payload import Reject, error_payload
from harness.result import SERVER_ERROR

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "TRANSITIONS",
    "Action",
    "Answer",
    "ConnectionMachine",
    "Count",
    "Event",
    "Log",
    "Pause",
    "SetTimer",
    "State",
    "Write",
]

MAX_HEADER_BYTES: Final = 16 * 1024  # h11 raises RemoteProtocolError beyond this: a 400
MAX_BODY_BYTES: Final = 16 * 1024 * 1024


class State(enum.Enum):
    IDLE = "idle"  # no byte of the next request yet; the idle deadline runs
    READING = "reading"  # part of a request is in; the request deadline runs
    ANSWERING = "answering"  # a reply is playing; bytes that arrive wait in the parser
    DRAINING = "draining"  # FIN sent; input discarded until EOF or the linger deadline
    SILENT = "silent"  # never reads or writes again; open until the server stops
    CLOSED = "closed"  # closed, reset or lost

    # Members are singletons: identity hashing skips Enum's Python-level __hash__, several
    # table lookups per request.
    __hash__ = object.__hash__


class Event(enum.Enum):
    DATA = "data"  # bytes received
    REQUEST = "request"  # the parser completed a request (raised by DATA, EOF, REPLY_DONE)
    STEP = "step"  # a reply's pause is over
    REPLY_DONE = "reply done"  # a reply's last byte is written
    DEADLINE = "deadline"  # the state's deadline has come
    SETTLE = "settle"  # MockServer.settle(): an IDLE deadline already past ends it now
    EOF = "eof"  # the client half-closed
    REFUSE = "refuse"  # over the connection cap: 503, then FIN
    STOP = "stop"  # the server stops
    LOST = "lost"  # the socket is gone

    __hash__ = object.__hash__  # as State's


_S, _E = State, Event
# state -> event -> the states that event may lead to. An event missing from a state's row
# is a bug in the driver or the machine: it raises.
TRANSITIONS: Final[dict[State, dict[Event, frozenset[State]]]] = {
    _S.IDLE: {
        _E.DATA: frozenset({_S.READING}),
        _E.DEADLINE: frozenset({_S.DRAINING, _S.CLOSED, _S.SILENT}),
        _E.SETTLE: frozenset({_S.DRAINING, _S.CLOSED, _S.SILENT}),
        _E.EOF: frozenset({_S.CLOSED}),
        _E.REFUSE: frozenset({_S.DRAINING}),
        _E.STOP: frozenset({_S.CLOSED}),
        _E.LOST: frozenset({_S.CLOSED}),
    },
    _S.READING: {
        _E.DATA: frozenset({_S.DRAINING, _S.CLOSED}),  # 400/413 (CLOSED when EOF came)
        _E.REQUEST: frozenset({_S.ANSWERING}),
        _E.DEADLINE: frozenset({_S.DRAINING, _S.CLOSED}),
        _E.SETTLE: frozenset(),
        _E.EOF: frozenset({_S.CLOSED}),
        _E.STOP: frozenset({_S.CLOSED}),
        _E.LOST: frozenset({_S.CLOSED}),
    },
    _S.ANSWERING: {
        _E.DATA: frozenset(),  # waits in the parser
        _E.STEP: frozenset(),
        _E.EOF: frozenset(),  # noted; the reply goes on
        _E.SETTLE: frozenset(),
        _E.REPLY_DONE: frozenset({_S.IDLE, _S.DRAINING, _S.CLOSED, _S.SILENT}),
        _E.STOP: frozenset({_S.CLOSED}),
        _E.LOST: frozenset({_S.CLOSED}),
    },
    _S.DRAINING: {
        _E.DATA: frozenset(),  # discarded
        _E.DEADLINE: frozenset({_S.CLOSED}),
        _E.EOF: frozenset({_S.CLOSED}),
        _E.SETTLE: frozenset(),
        _E.STOP: frozenset({_S.CLOSED}),
        _E.LOST: frozenset({_S.CLOSED}),
    },
    _S.SILENT: {
        _E.DATA: frozenset(),
        _E.EOF: frozenset(),
        _E.SETTLE: frozenset(),
        _E.STOP: frozenset({_S.CLOSED}),
        _E.LOST: frozenset({_S.CLOSED}),
    },
    _S.CLOSED: {
        _E.DATA: frozenset(),
        _E.EOF: frozenset(),
        _E.SETTLE: frozenset(),
        _E.STOP: frozenset(),
        _E.LOST: frozenset(),
    },
}


# Module-level names for the members: reading ``State.IDLE`` goes through Enum's descriptor
# (about 0.3 us), and the machine reads members a few dozen times per request.
_IDLE, _READING, _ANSWERING = State.IDLE, State.READING, State.ANSWERING
_DRAINING, _SILENT, _CLOSED = State.DRAINING, State.SILENT, State.CLOSED
_DATA, _REQUEST, _STEP, _REPLY_DONE = Event.DATA, Event.REQUEST, Event.STEP, Event.REPLY_DONE
_DEADLINE, _SETTLE, _EOF = Event.DEADLINE, Event.SETTLE, Event.EOF
_REFUSE, _STOP, _LOST = Event.REFUSE, Event.STOP, Event.LOST


# --- actions -----------------------------------------------------------------------------------


class Write(NamedTuple):
    data: bytes


class SetTimer(NamedTuple):
    """Fire :meth:`ConnectionMachine.deadline` at clock reading ``at`` (None: never)."""

    at: float | None


class Pause(NamedTuple):
    """Call :meth:`ConnectionMachine.step` after ``seconds`` (a pause inside a reply)."""

    seconds: float


class Log(NamedTuple):
    level: int
    message: str


class Count(NamedTuple):
    """Count a connection-level event (``idle_close``, ``server_error``) in the ledger."""

    kind: str


class _Simple(enum.Enum):
    HALF_CLOSE = "half-close"  # send FIN and keep reading, to drain
    CLOSE = "close"  # close once the written bytes are out (FIN)
    RESET = "reset"  # SO_LINGER 0 and abort: RST
    SILENCE = "silence"  # stop reading; never write again


HALF_CLOSE: Final = _Simple.HALF_CLOSE
CLOSE: Final = _Simple.CLOSE
RESET: Final = _Simple.RESET
SILENCE: Final = _Simple.SILENCE
Action = Write | SetTimer | Pause | Log | Count | _Simple


class Answer(Protocol):
    """A decided reply; ``record(status)`` records its call (idempotent; 0: nothing sent)."""

    @property
    def reply(self) -> wire.Reply: ...

    def record(self, status: int) -> None: ...


Respond = Callable[[h11.Request, bytes, wire.Framing], Answer]


class ConnectionMachine:
    """One connection's state; each public method is an event and returns the actions."""

    def __init__(
        self,
        respond: Respond,
        *,
        idle_s: float | None,
        idle_close: wire.End,
        request_timeout_s: float,
        linger_s: float,
    ) -> None:
        self.respond = respond
        self.idle_s = idle_s
        self.idle_close = idle_close
        self.request_timeout_s = request_timeout_s
        self.linger_s = linger_s
        self.state = _IDLE
        self.deadline: float | None = None  # the current state's deadline
        self._armed: float | None = None  # what the driver's timer is set to
        self._parser = _parser()
        self._buffered = 0  # bytes given to this request's parser
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._eof = False
        self._answer: Answer | None = None
        self._step = 0  # the next step of the answer's reply
        self._last_write = 0  # the step after the reply's last write (0: it writes nothing)
        self._sent = 0  # the status once a byte of the reply is written, else 0
        self._out: list[Action] = []

    # --- events ----------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The socket is accepted: it waits for its first request under the request deadline.

        The keep-alive idle timeout runs only between requests (from the end of a reply), as
        nginx's ``keepalive_timeout`` does: a client that connects and is then held up (a
        loaded machine) is not reaped before its first request, which would make a healthy
        client's run depend on the machine's load. With an idle timeout, a connection that
        never sends a byte ends like an idle one, after ``request_timeout_s`` (or ``idle_s``
        when that is longer)."""
        self.deadline = (
            None if self.idle_s is None else now + max(self.idle_s, self.request_timeout_s)
        )
        return self._flush()

    def data(self, data: bytes, now: float) -> list[Action]:
        # Every state handles DATA (tests/test_mockserver_machine.py checks the table), so the
        # hottest event skips the table lookup.
        state = self.state
        if state is _IDLE or state is _READING or state is _ANSWERING:
            self._buffered += len(data)
            self._parser.receive_data(data)
            if state is not _ANSWERING:
                self._parse(now)
        return self._flush()  # DRAINING, SILENT, CLOSED: discarded

    def eof(self, now: float) -> list[Action]:
        self._check(_EOF)
        self._eof = True
        if self.state is _DRAINING:
            self._goto(_EOF, _CLOSED, CLOSE)
        elif self.state in (_IDLE, _READING, _ANSWERING):
            self._parser.receive_data(b"")
            if self.state is not _ANSWERING:
                self._parse(now)
        return self._flush()

    def step(self, now: float) -> list[Action]:
        """The pause the last :class:`Pause` asked for is over."""
        self._check(_STEP)
        self._play(now)
        self._parse(now)  # the next pipelined request, if the reply is done
        return self._flush()

    def deadline_reached(self, now: float) -> list[Action]:
        self._check(_DEADLINE)
        self.deadline = self._armed = None  # the driver's timer has fired
        if self.state is _IDLE:
            self._idle_close(_DEADLINE, now)
        elif self.state is _READING:
            message = f"the request did not arrive within {self.request_timeout_s:g} s"
            self._reject(_DEADLINE, Reject(408, message[0].upper() + message[1:] + "."), now)
        else:
            self._goto(_DEADLINE, _CLOSED, CLOSE)  # the linger is over
        return self._flush()

    def settle(self, now: float) -> list[Action]:
        """Run the idle close now if its deadline is ``now`` or earlier."""
        self._check(_SETTLE)
        if self.state is _IDLE and self.deadline is not None and self.deadline <= now:
            self._idle_close(_SETTLE, now)
        return self._flush()

    def refuse(self, now: float, limit: int) -> list[Action]:
        """Over the connection cap (``limit``): answer 503 at once, then FIN."""
        self._check(_REFUSE)
        reject = Reject(
            503,
            f"The mock server has {limit} open connections, its limit; retry later.",
            type="server_error",
        )
        self._out.append(Log(logging.INFO, f"refused: over the limit of {limit} connections"))
        self._write_reject(reject)
        self._close_fin(_REFUSE, now)
        return self._flush()

    def stop(self) -> list[Action]:
        """The server stops: close, recording a reply that is cut short."""
        self._check(_STOP)
        if self.state is not _CLOSED:
            self._record_cut_short()
            self._goto(_STOP, _CLOSED, CLOSE)
        return self._flush()

    def lost(self) -> list[Action]:
        """The socket is gone (closed by us or the peer, reset)."""
        self._check(_LOST)
        if self.state is not _CLOSED:
            self._record_cut_short()
            self._goto(_LOST, _CLOSED)
        return self._flush()

    # --- reading ---------------------------------------------------------------------------

    def _parse(self, now: float) -> None:
        """Handle the parser's events until it needs data, a reply pauses, or the end.

        A loop, not recursion: a reply that ends at once returns here for the next
        pipelined request."""
        while True:
            if self.state is _IDLE:
                if self._buffered:  # the first bytes of a request: its deadline starts
                    self._goto(_DATA, _READING)
                    self.deadline = now + self.request_timeout_s
                elif self._eof:  # EOF before a byte of a new request: the client closed
                    self._goto(_EOF, _CLOSED, CLOSE)
                    return
                else:
                    return
            if self.state is not _READING:
                return
            try:
                event = self._parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._reject(_DATA, Reject(400, f"Malformed HTTP request: {exc}."), now)
                return
            kind = type(event)
            if event is h11.NEED_DATA:
                return
            if kind is h11.Data:
                self._body += event.data  # type: ignore[union-attr]
                if len(self._body) > MAX_BODY_BYTES:
                    self._reject(_DATA, Reject(413, "Request body too large."), now)
            elif kind is h11.Request:
                self._on_head(event, now)  # type: ignore[arg-type]
            elif kind is h11.EndOfMessage:
                self._on_request(now)
            else:  # ConnectionClosed: EOF after bytes h11 skips (blank lines)
                self._goto(_EOF, _CLOSED, CLOSE)

    def _on_head(self, request: h11.Request, now: float) -> None:
        # h11 bounds only a head that arrives in pieces; bound a whole one here too.
        if self._buffered > MAX_HEADER_BYTES and _head_size(request) > MAX_HEADER_BYTES:
            limit = f"Request headers too large; the limit is {MAX_HEADER_BYTES} bytes."
            self._reject(_DATA, Reject(400, limit), now)
            return
        self._request = request
        if self._parser.they_are_waiting_for_100_continue:  # e.g. curl with a large body
            interim = h11.InformationalResponse(status_code=100, headers=[])
            self._out.append(Write(self._parser.send(interim) or b""))

    def _on_request(self, now: float) -> None:
        request = self._request
        assert request is not None
        framing = wire.framing_for(
            self._parser.their_http_version or b"1.1",
            keep_alive=self._parser.their_state is h11.DONE,
            method=request.method,
        )
        self._goto(_REQUEST, _ANSWERING)
        self.deadline = None
        try:
            self._answer = self.respond(request, bytes(self._body), framing)
        except Exception as exc:  # a bug in the mock, not the client's doing
            self._out += [
                Log(logging.ERROR, f"unexpected error answering a request: {exc!r}"),
                Count(SERVER_ERROR),
            ]
            self._write_reject(Reject(500, "The mock server failed.", type="server_error"))
            self._close_fin(_REPLY_DONE, now)
            return
        steps = self._answer.reply.steps
        self._step = self._sent = 0
        last = len(steps)  # usually the last step is the last write
        while last and type(steps[last - 1]) is not bytes:
            last -= 1
        self._last_write = last
        self._play(now)

    # --- answering -------------------------------------------------------------------------

    def _play(self, now: float) -> None:
        """Write the reply's steps up to its next pause, or to its end."""
        answer = self._answer
        assert answer is not None
        reply = answer.reply
        steps = reply.steps
        while self._step < len(steps):
            step = steps[self._step]
            self._step += 1
            if type(step) is float:
                self._out.append(Pause(step))
                return
            if self._step == self._last_write:
                answer.record(reply.status)  # the last write: the call is done
            self._sent = reply.status
            self._out.append(Write(step))  # type: ignore[arg-type]
        if not self._last_write:
            answer.record(0)  # a reply without a byte: the request was dropped
        self._answer = None
        self._after_reply(reply.end, now)

    def _after_reply(self, end: wire.End, now: float) -> None:
        if end == "fin":
            self._close_fin(_REPLY_DONE, now)
        elif end == "rst":
            self._goto(_REPLY_DONE, _CLOSED, RESET)
        elif end == "silent":
            self._goto(_REPLY_DONE, _SILENT, SILENCE)
        else:
            self._goto(_REPLY_DONE, _IDLE)
            self._next_request(now)

    def _next_request(self, now: float) -> None:
        """Hand the bytes after this request to a fresh parser (:meth:`_parse` reads them)."""
        data, closed = self._parser.trailing_data
        self._parser = _parser()
        self._request = None
        self._body = bytearray()
        self._buffered = len(data)
        self.deadline = None if self.idle_s is None else now + self.idle_s
        if data:
            self._parser.receive_data(data)
        if closed:
            self._parser.receive_data(b"")

    def _record_cut_short(self) -> None:
        if self._answer is not None:
            self._answer.record(self._sent)
            self._answer = None

    # --- ending ----------------------------------------------------------------------------

    def _idle_close(self, event: Event, now: float) -> None:
        self._out.append(Count(IDLE_CLOSE))
        if self.idle_close == "rst":
            self._goto(event, _CLOSED, RESET)
        elif self.idle_close == "silent":
            self._goto(event, _SILENT, SILENCE)
        else:
            self._close_fin(event, now)

    def _reject(self, event: Event, reject: Reject, now: float) -> None:
        """Answer a request that cannot be served (h11's parser is unusable now), and end."""
        self._out.append(Log(logging.INFO, f"answered {reject.status}: {reject.message}"))
        self._write_reject(reject)
        self._close_fin(event, now)

    def _write_reject(self, reject: Reject) -> None:
        payload = error_payload(reject)
        head = wire.response_head(
            reject.status, payload.headers, length=len(payload.body), close=True, chunked=True
        )
        self._out.append(Write(head + payload.body))

    def _close_fin(self, event: Event, now: float) -> None:
        if self._eof:  # nothing more can come: close() flushes and sends the FIN
            self._goto(event, _CLOSED, CLOSE)
            return
        self._goto(event, _DRAINING, HALF_CLOSE)
        self.deadline = now + self.linger_s

    # --- bookkeeping -----------------------------------------------------------------------

    def _check(self, event: Event) -> None:
        if event not in TRANSITIONS[self.state]:
            raise RuntimeError(f"can't handle event {event.value!r} in state {self.state.value!r}")

    def _goto(self, event: Event, state: State, action: Action | None = None) -> None:
        if state not in TRANSITIONS[self.state].get(event, ()):
            raise RuntimeError(
                f"can't move from {self.state.value!r} to {state.value!r} on {event.value!r}"
            )
        self.state = state
        if state is not _IDLE and state is not _READING:
            self.deadline = None
        if action is not None:
            self._out.append(action)

    def _flush(self) -> list[Action]:
        """The actions gathered for this event, with the timer set to the state's deadline."""
        out, self._out = self._out, []
        if self.deadline != self._armed:
            self._armed = self.deadline
            out.append(SetTimer(self.deadline))
        return out


def _parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)


def _head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)
