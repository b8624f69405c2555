"""harness.messages: every message round-trips, and bad input is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UsageError, WorkerError
from harness.messages import (
    MESSAGE_MAX,
    AttachRequest,
    Call,
    Client,
    Done,
    Environment,
    Exited,
    Failed,
    ForkFailed,
    ForkRequest,
    Job,
    KillRequest,
    Ready,
    Refused,
    Sample,
    Started,
    Untestable,
    WorkerLine,
    ZygoteReport,
    ZygoteRequest,
    encode,
    encode_line,
    label_for_turn,
    parse_line,
    parse_report,
    parse_request,
)
from harness.result import CallRecord, SocketSample
from harness.scenario import parse_scenario

LINES: list[WorkerLine] = [
    Environment({"python": "3.11.9", "openai": "2.3.0"}),
    Sample(SocketSample("start", 0, 0, 7)),
    Sample(SocketSample(label_for_turn(2), 1, 2, 9, turn=2, events=("reload",))),
    Client("async"),
    Call(CallRecord(0, 1, 1, ok=True, latency_ms=3.5, started_s=0.25)),
    Call(
        CallRecord(
            1,
            2,
            1,
            ok=False,
            latency_ms=1.0,
            started_s=1.0,
            error_type="openai.APIConnectionError",
            error_chain=("APIConnectionError: x", "ConnectError: y"),
            sdk_retries=2,
            factory_raised=True,
        )
    ),
    Untestable("factory 'm:f' raised"),
    Failed("RuntimeError: boom"),
    Refused("socket.connect", "a connection to", "10.0.0.1:443", "factory.py:3", "refused ..."),
    Refused("socket.getaddrinfo", "a name lookup of", "example.com", None, "refused ..."),
    Done(),
]


@pytest.mark.parametrize("line", LINES, ids=lambda line: type(line).__name__)
def test_every_worker_line_round_trips(line: WorkerLine) -> None:
    text = encode_line(line)
    assert "\n" not in text
    assert parse_line(text) == line


def test_worker_lines_keep_their_wire_format() -> None:
    # The format older result files and other tools read: one flat object, "type" first.
    assert encode_line(Done()) == '{"type":"done"}'
    assert encode_line(Client("sync")) == '{"type":"client","kind":"sync"}'
    assert encode_line(Failed("x")) == '{"type":"error","message":"x"}'
    assert json.loads(encode_line(LINES[2])) == {
        "type": "sample",
        "label": "turn 2",
        "close_wait": 1,
        "established": 2,
        "fds": 9,
        "turn": 2,
        "events": ["reload"],
    }
    assert json.loads(encode_line(LINES[9])) == {
        "type": "refused",
        "event": "socket.getaddrinfo",
        "action": "a name lookup of",
        "destination": "example.com",
        "origin": None,
        "message": "refused ...",
    }


def test_an_unknown_line_is_a_worker_error_and_a_cut_line_is_a_value_error() -> None:
    with pytest.raises(WorkerError, match="worker output: unknown line type 'telemetry'"):
        parse_line('{"type": "telemetry"}')
    with pytest.raises(WorkerError, match="unknown line type None"):
        parse_line("[1, 2]")
    with pytest.raises(ValueError, match="Unterminated string"):
        parse_line('{"type": "call", "sess')


ZYGOTE = [
    ForkRequest(3, "/tmp/j/job.json", "/tmp/j/stderr.txt", "/tmp/project", (5, 9)),
    KillRequest(3),
    AttachRequest(),
    Ready("/tmp/z/preloaded.json", "0" * 64),
    Started(3, 4242),
    ForkFailed(3, "2 threads"),
    Exited(3, -9),
]


@pytest.mark.parametrize("message", ZYGOTE, ids=lambda m: type(m).__name__)
def test_every_zygote_message_round_trips_on_its_side(
    message: ZygoteRequest | ZygoteReport,
) -> None:
    data = encode(message)
    assert len(data) < MESSAGE_MAX
    if isinstance(message, ForkRequest | KillRequest | AttachRequest):
        assert parse_request(data) == message
        with pytest.raises(WorkerError, match=f"zygote message of unknown type {message.TYPE!r}"):
            parse_report(data)
    else:
        assert parse_report(data) == message
        with pytest.raises(WorkerError, match=f"zygote message of unknown type {message.TYPE!r}"):
            parse_request(data)


def test_a_job_round_trips_through_its_file(tmp_path: Path) -> None:
    scenario = parse_scenario("version: 1\nsession: {turns: 2}\n", default_name="s")
    job = Job(
        scenario=scenario.to_dict(),
        factory="bundled-ok",
        root=str(tmp_path),
        base_url="http://127.0.0.1:1234/v1",
        port=1234,
        out=str(tmp_path / "out.jsonl"),
        settle_fd=7,
        fallback_base_url="http://127.0.0.1:1235/v1",
    )
    job.write(tmp_path / "job.json")
    assert Job.load(tmp_path / "job.json") == job


def test_an_unusable_job_file_names_itself_and_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"factory": "x"}', encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        Job.load(path)
    assert str(caught.value).startswith(f"job file {str(path)!r} is unusable: TypeError: ")
    assert str(caught.value).endswith(
        "it needs the keys scenario (a Scenario.to_dict()), factory, root, base_url, port, out"
    )
