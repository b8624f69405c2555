"""The connection state machine with bytes and clock readings only: no sockets, no loop."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import h11
import pytest

from harness.mockserver import wire
from harness.mockserver.machine import (
    CLOSE,
    HALF_CLOSE,
    MAX_BODY_BYTES,
    RESET,
    SILENCE,
    TRANSITIONS,
    Action,
    ConnectionMachine,
    Count,
    Event,
    Log,
    Pause,
    SetTimer,
    State,
    Write,
)
from harness.mockserver.payload import json_payload

BODY = b'{"model": "m"}'
PAYLOAD = json_payload(200, {"ok": True})
KEEP = wire.payload_reply(PAYLOAD, wire.Framing(True, True, False))
ANSWER = KEEP.steps[0]
assert isinstance(ANSWER, bytes)


def request(path: str = "/v1/models", *headers: str, body: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
    return (head + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode() + body


@dataclass
class Answer:
    reply: wire.Reply
    recorded: list[int] = field(default_factory=list)

    def record(self, status: int) -> None:
        if not self.recorded:
            self.recorded.append(status)


@dataclass
class Responder:
    """Answers every request with ``reply`` and remembers what it was asked."""

    reply: wire.Reply = KEEP
    seen: list[tuple[str, bytes, wire.Framing]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def __call__(self, req: h11.Request, body: bytes, framing: wire.Framing) -> Answer:
        self.seen.append((req.target.decode(), body, framing))
        reply = self.reply
        if not framing.keep_alive:
            reply = reply._replace(end="fin")
        self.answers.append(Answer(reply))
        return self.answers[-1]


def machine(
    responder: Responder | None = None, *, idle_s: float | None = None, close: str = "fin"
) -> ConnectionMachine:
    m = ConnectionMachine(
        responder or Responder(),
        idle_s=idle_s,
        idle_close=close,  # type: ignore[arg-type]
        request_timeout_s=10.0,
        linger_s=2.0,
    )
    # Before its first request a connection is not idle: the request deadline runs instead.
    assert m.start(100.0) == ([] if idle_s is None else [SetTimer(110.0)])
    return m


def status_of(action: Action) -> int:
    assert isinstance(action, Write)
    return int(action.data.split(b" ", 2)[1])


def error_of(action: Action) -> dict[str, str]:
    assert isinstance(action, Write)
    error: dict[str, str] = json.loads(action.data.split(b"\r\n\r\n", 1)[1])["error"]
    return error


# --- requests and replies ------------------------------------------------------------------------


def test_a_whole_request_is_answered_in_the_same_event_and_recorded_first() -> None:
    responder = Responder()
    m = machine(responder)
    assert m.data(request(body=BODY), 100.0) == [Write(ANSWER)]
    assert m.state is State.IDLE
    assert responder.seen == [("/v1/models", BODY, wire.Framing(True, True, False))]
    assert responder.answers[0].recorded == [200]


def test_a_request_in_pieces_runs_the_request_deadline_until_complete() -> None:
    m = machine()
    raw = request(body=BODY)
    assert m.data(raw[:10], 100.0) == [SetTimer(110.0)]
    assert m.state is State.READING
    assert m.data(raw[10:], 101.0) == [Write(ANSWER), SetTimer(None)]


def test_pipelined_requests_are_answered_in_order_without_recursion() -> None:
    responder = Responder()
    m = machine(responder)
    actions = m.data(b"".join(request(f"/r{n}") for n in range(3000)), 100.0)
    assert actions == [Write(ANSWER)] * 3000
    assert [seen[0] for seen in responder.seen[:3]] == ["/r0", "/r1", "/r2"]


def test_a_pause_in_a_reply_holds_the_next_request_until_the_step() -> None:
    paused = wire.Reply((b"head", 0.5, b"body"), 200, "keep")
    responder = Responder(paused)
    m = machine(responder)
    assert m.data(request("/a"), 100.0) == [Write(b"head"), Pause(0.5)]
    assert m.data(request("/b"), 100.1) == []  # waits in the parser
    assert responder.answers[0].recorded == []
    assert m.step(100.5) == [Write(b"body"), Write(b"head"), Pause(0.5)]
    assert responder.answers[0].recorded == [200]
    assert [seen[0] for seen in responder.seen] == ["/a", "/b"]


def test_connection_close_gets_its_answer_then_a_fin_and_drains_until_eof() -> None:
    m = machine()
    assert m.data(request("/x", "connection: close"), 100.0) == [
        Write(ANSWER),
        HALF_CLOSE,
        SetTimer(102.0),
    ]
    assert m.data(b"ignored", 100.5) == []
    assert m.eof(100.6) == [CLOSE, SetTimer(None)]
    assert m.state is State.CLOSED


def test_eof_while_answering_closes_after_the_reply() -> None:
    m = machine(Responder(wire.Reply((b"head", 0.5, b"body"), 200, "keep")))
    m.data(request(), 100.0)
    assert m.eof(100.1) == []
    assert m.step(100.5) == [Write(b"body"), CLOSE]


def test_the_linger_deadline_closes_a_draining_connection() -> None:
    m = machine()
    m.data(request("/x", "connection: close"), 100.0)
    assert m.deadline_reached(102.0) == [CLOSE]


def test_a_reply_without_bytes_is_recorded_as_dropped() -> None:
    responder = Responder(wire.reply_without_answer("rst"))
    m = machine(responder)
    assert m.data(request(), 100.0) == [RESET]
    assert responder.answers[0].recorded == [0]


def test_stop_records_a_reply_cut_short() -> None:
    responder = Responder(wire.Reply((b"head", 5.0, b"body"), 200, "keep"))
    m = machine(responder)
    m.data(request(), 100.0)
    assert m.stop() == [CLOSE]
    assert responder.answers[0].recorded == [200]  # its head was written


# --- keep-alive idle deadline and settle ---------------------------------------------------


@pytest.mark.parametrize(
    ("close", "ending", "state"),
    [
        ("fin", [HALF_CLOSE, SetTimer(103.05)], State.DRAINING),
        ("rst", [RESET], State.CLOSED),  # the timer has fired: nothing to cancel
        ("silent", [SILENCE], State.SILENT),
    ],
)
def test_the_idle_deadline_ends_the_connection_as_the_scenario_says(
    close: str, ending: list[Action], state: State
) -> None:
    m = machine(idle_s=0.05, close=close)
    assert m.data(request(), 101.0) == [Write(ANSWER), SetTimer(101.05)]
    assert m.deadline_reached(101.05) == [Count("idle_close"), *ending]
    assert m.state is state
    assert m.data(request(), 101.1) == []  # nothing is read or answered any more


def test_settle_ends_an_idle_connection_only_past_its_deadline() -> None:
    m = machine(idle_s=0.05)
    m.data(request(), 101.0)
    assert m.settle(101.04) == []
    assert m.state is State.IDLE
    assert m.settle(101.05) == [Count("idle_close"), HALF_CLOSE, SetTimer(103.05)]
    assert m.settle(200.0) == []  # draining: nothing more to settle


def test_a_fresh_connection_is_not_reaped_before_its_first_request() -> None:
    m = machine(idle_s=0.05)
    assert m.settle(100.5) == []  # past idle_s since the accept: a loaded client may be late
    assert m.state is State.IDLE
    assert m.data(request(), 100.5) == [Write(ANSWER), SetTimer(100.55)]
    assert m.deadline_reached(100.55) == [Count("idle_close"), HALF_CLOSE, SetTimer(102.55)]


def test_a_connection_that_never_sends_ends_at_the_request_deadline() -> None:
    m = machine(idle_s=0.05)
    assert m.deadline_reached(110.0) == [Count("idle_close"), HALF_CLOSE, SetTimer(112.0)]


def test_settle_leaves_a_connection_without_idle_timeout_alone() -> None:
    m = machine()
    assert m.settle(1e9) == []
    assert m.state is State.IDLE


# --- requests the machine refuses ------------------------------------------------------------


def test_slowloris_head_gets_408_at_the_request_deadline() -> None:
    m = machine()
    assert m.data(b"POST /v1/models HTTP/1.1\r\nho", 100.0) == [SetTimer(110.0)]
    for second in range(1, 10):  # trickling bytes does not move the deadline
        assert m.data(b"s", 100.0 + second) == []
    actions = m.deadline_reached(110.0)
    assert actions[0] == Log(logging.INFO, "answered 408: The request did not arrive within 10 s.")
    assert status_of(actions[1]) == 408
    assert actions[2:] == [HALF_CLOSE, SetTimer(112.0)]


def test_malformed_head_gets_400_and_a_fin() -> None:
    m = machine()
    actions = m.data(b"NOT HTTP\r\n\r\n", 100.0)
    assert status_of(actions[1]) == 400
    assert error_of(actions[1])["message"].startswith("Malformed HTTP request: ")
    assert actions[2:] == [HALF_CLOSE, SetTimer(102.0)]


def test_oversized_head_and_body_get_400_and_413() -> None:
    m = machine()
    actions = m.data(request("/x", "x-big: " + "a" * 20_000), 100.0)
    assert status_of(actions[1]) == 400
    m = machine()
    head = f"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    actions = m.data(head.encode() + b"a" * (MAX_BODY_BYTES + 1), 100.0)
    assert status_of(actions[1]) == 413


def test_an_exception_in_respond_is_a_500_an_error_line_and_a_count() -> None:
    def broken(req: h11.Request, body: bytes, framing: wire.Framing) -> Answer:
        raise KeyError("bug")

    m = ConnectionMachine(
        broken, idle_s=None, idle_close="fin", request_timeout_s=10.0, linger_s=2.0
    )
    actions = m.data(request(), 100.0)
    assert actions[:2] == [
        Log(logging.ERROR, "unexpected error answering a request: KeyError('bug')"),
        Count("server_error"),
    ]
    assert (status_of(actions[2]), error_of(actions[2])["type"]) == (500, "server_error")
    assert actions[3:] == [HALF_CLOSE, SetTimer(102.0)]


def test_refused_over_the_cap_gets_503_and_a_fin() -> None:
    m = machine()
    actions = m.refuse(100.0, 50)
    assert actions[0] == Log(logging.INFO, "refused: over the limit of 50 connections")
    assert status_of(actions[1]) == 503
    assert actions[2:] == [HALF_CLOSE, SetTimer(102.0)]


# --- the table -----------------------------------------------------------------------------------


def test_every_state_has_a_row_and_every_move_is_to_a_state() -> None:
    assert set(TRANSITIONS) == set(State)
    assert all(Event.DATA in row for row in TRANSITIONS.values())  # data() relies on it
    for row in TRANSITIONS.values():
        assert set(row) <= set(Event)
        assert all(target <= set(State) for target in row.values())
    assert TRANSITIONS[State.CLOSED] == {
        event: frozenset()
        for event in (Event.DATA, Event.EOF, Event.SETTLE, Event.STOP, Event.LOST)
    }


def test_an_event_a_state_does_not_handle_is_an_error_naming_both() -> None:
    m = machine()
    with pytest.raises(RuntimeError, match="can't handle event 'step' in state 'idle'"):
        m.step(100.0)
    m.lost()
    with pytest.raises(RuntimeError, match="can't handle event 'deadline' in state 'closed'"):
        m.deadline_reached(100.0)
