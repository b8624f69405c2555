"""``harness import``: each trace format read into one timeline, the replay plan that keeps
every gap on its side of the idle timeout, the scenario written, and bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.importer import detect, import_trace, read_trace, trace_records
from harness.importer.model import Trace, TraceCall
from harness.importer.replay import Gap, plan
from harness.result import ServerCall
from harness.scenario import TimelineCall, TimelineSession, load_scenario

DATA = Path(__file__).parent / "data" / "import"
T0 = 1_796_119_200.0  # 2026-12-01T10:00:00Z


def _jsonl(tmp_path: Path, *records: object, name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_jsonl_reads_iso_and_epoch_times_with_defaults(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        {"ts": "2026-12-01T10:00:00.250Z", "session": "a", "duration_ms": 5, "stream": True},
        {"ts": T0 + 1.5, "duration_ms": 7.5, "status": 429, "error": "RateLimitError", "x": 1},
        {"ts": "2026-12-01T10:00:02", "session": 7, "duration_ms": 1},  # no zone: UTC
    )
    trace = read_trace(path)
    assert trace.fmt == "jsonl"
    assert trace.calls == (
        TraceCall(T0 + 0.25, 5.0, "a", True, 200, "", 1),
        TraceCall(T0 + 1.5, 7.5, "1", False, 429, "RateLimitError", 2),
        TraceCall(T0 + 2, 1.0, "7", False, 200, "", 3),
    )


def test_a_har_file_imports_to_the_expected_scenario() -> None:
    trace = read_trace(DATA / "gateway.har")
    assert trace.fmt == "har"
    # the /v1/models entry is not an LLM call; the reset one has no status and its error
    assert [(c.session, c.stream, c.status, c.error) for c in trace.calls] == [
        ("s1", True, 200, ""),
        ("s2", False, 200, ""),
        ("s1", False, 200, ""),
        ("s2", True, 0, "net::ERR_CONNECTION_RESET"),
    ]
    imported = import_trace(trace, compress=10, idle_timeout_ms=5000, name="from-har")
    scenario = imported.scenario
    assert scenario.name == "from-har"
    assert scenario.server.keepalive.idle_timeout_ms == 500
    assert scenario.server.latency_ms == 90  # median of 1000, 1500, 500, 800 ms, / 10
    # gaps: s1 3.0 s - 1.0 s end = 2 s (shorter than 5 s), s2 12 s - 2 s = 10 s (longer);
    # the last call of each idles past the timeout (500 + 30% margin)
    assert scenario.session.timeline == (
        TimelineSession(0, (TimelineCall(True, 200), TimelineCall(False, 650)), "s1"),
        TimelineSession(50, (TimelineCall(False, 1000), TimelineCall(True, 650)), "s2"),
    )
    assert (scenario.session.concurrency, scenario.session.turns) == (2, 2)


def test_otel_genai_spans_import_to_the_expected_scenario() -> None:
    trace = read_trace(DATA / "gateway.otel.json")
    assert trace.fmt == "otel"
    # execute_tool and embeddings spans are skipped; error.type wins over the status message
    assert [(c.session, c.stream, c.status, c.error) for c in trace.calls] == [
        ("c1", True, 200, ""),
        ("c1", False, 0, "APIConnectionError"),
        ("c2", False, 200, ""),
    ]
    assert [c.duration_ms for c in trace.calls] == [2000, 1000, 500]
    scenario = import_trace(trace, compress=2, idle_timeout_ms=1000, name="o").scenario
    assert scenario.server.latency_ms == 500
    assert scenario.session.timeline == (
        TimelineSession(0, (TimelineCall(True, 50), TimelineCall(False, 650)), "c1"),
        TimelineSession(500, (TimelineCall(False, 650),), "c2"),
    )


def test_otlp_json_lines_are_read_document_by_document(tmp_path: Path) -> None:
    document = json.loads((DATA / "gateway.otel.json").read_text(encoding="utf-8"))
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(document) + "\n\n" + json.dumps(document) + "\n", encoding="utf-8")
    assert detect(path.read_text(encoding="utf-8")) == "otel"
    assert len(read_trace(path).calls) == 6


def test_formats_are_detected() -> None:
    assert detect('{"log": {"entries": []}}') == "har"
    assert detect('{"resourceSpans": []}') == "otel"
    assert detect('{"ts": 1, "duration_ms": 2}\n{"ts": 2, "duration_ms": 2}\n') == "jsonl"
    assert detect("not json at all") == "jsonl"


def _trace(*calls: tuple[str, float, float]) -> Trace:
    return Trace("t", "jsonl", tuple(TraceCall(T0 + s, d, name) for name, s, d in calls))


def test_every_gap_keeps_its_side_with_a_margin() -> None:
    # idle timeout 1000 ms, 4x faster: 250 ms here, 75 ms margin on each side
    trace = _trace(
        ("a", 0, 100),  # gap 900 ms: shorter; 225 ms compressed is too close: 175
        ("a", 1.0, 100),  # gap 1100 ms: longer; 275 ms is too close: 325
        ("a", 2.2, 100),  # gap 8000 ms: longer, 2000 ms compressed as it is
        ("a", 10.3, 500),  # overlapped by the next call (starts 400 ms in): gap 0
        ("a", 10.7, 100),  # the last: idles past the timeout
    )
    replay = plan(trace, compress=4, idle_timeout_ms=1000)
    assert (replay.server_idle_ms, replay.margin_ms) == (250, 75)
    assert replay.gaps() == [
        Gap(900.0, 175, longer=False, clamped=True),
        Gap(1100.0, 325, longer=True, clamped=True),
        Gap(8000.0, 2000, longer=True),
        Gap(-100.0, 0, longer=False, overlapped=True),
        Gap(None, 325, longer=True),
    ]


def test_a_session_name_no_header_can_carry_is_numbered() -> None:
    trace = _trace(("ok-1", 0, 10), ("line\nbreak", 0.5, 10), ("x" * 65, 1.0, 10))
    replay = plan(trace, compress=1, idle_timeout_ms=1000)
    assert [s.name for s in replay.sessions] == ["ok-1", "session-2", "session-3"]


def test_the_call_log_exports_as_a_trace_that_reads_back(tmp_path: Path) -> None:
    calls = (
        ServerCall(1, 1, "/v1/chat/completions", True, 200, 0, None, 0.5, 12.5, "2"),
        ServerCall(2, 1, "/v1/models", False, 200, 0, None, 0.6, 1.0),
        ServerCall(3, 2, "/v1/responses", False, 500, 0, "http_error", 0.75, 3.0),
    )
    records = trace_records(calls)
    assert records == [
        {"ts": 0.5, "session": "2", "duration_ms": 12.5, "stream": True, "status": 200,
         "error": None},
        {"ts": 0.75, "session": "1", "duration_ms": 3.0, "stream": False, "status": 500,
         "error": "http_error"},
    ]  # fmt: skip
    trace = read_trace(_jsonl(tmp_path, *records))
    assert [(c.start_s, c.session, c.stream, c.error) for c in trace.calls] == [
        (0.5, "2", True, ""),
        (0.75, "1", False, "http_error"),
    ]


def test_the_command_writes_a_scenario_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "replay.yaml"
    code = main(["import", str(DATA / "gateway.har"), "-o", str(out), "--idle-timeout-ms", "5000"])
    assert code == 0
    shown = capsys.readouterr().out
    assert shown == (
        f"{out}: 4 calls in 2 sessions (har), 25x faster, idle timeout 5000 -> 200 ms; "
        "1 of 2 gaps longer, 0 moved to keep their side\n"
    )
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Imported by `harness import` from ")
    assert "# Time runs 25x faster" in text
    scenario = load_scenario(out)
    assert scenario.name == "gateway"
    assert scenario.session.timeline[0].calls[0] == TimelineCall(True, 80)
    assert scenario.expect.close_wait_live_after_gc == 0


def test_without_output_the_scenario_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(DATA / "gateway.otel.json"), "--compress", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Imported by")
    assert "version: 1\n" in captured.out
    assert captured.err.startswith("<stdout>: 3 calls in 2 sessions (otel), 2x faster")


BAD = [
    ("t.jsonl", '{"ts": 1, "duration_ms": 2}\n{"ts": 1,\n', ":2: not JSON"),
    ("t.jsonl", '{"ts": 1, "duration_ms": 2}\n\n[1, 2]\n', ":3: a record is a JSON object"),
    ("t.jsonl", '{"duration_ms": 2}\n', ":1: `ts` is missing; give it as a number"),
    ("t.jsonl", '{"ts": "yesterday", "duration_ms": 2}\n', ":1: `ts` is 'yesterday'; give ISO"),
    ("t.jsonl", '{"ts": 1e12, "duration_ms": 2}\n', ":1: `ts` is 1000000000000.0: epoch"),
    ("t.jsonl", '{"ts": 1, "duration_ms": -2}\n', ":1: `duration_ms` is -2; give a finite"),
    ("t.jsonl", '{"ts": 1, "duration_ms": 2, "stream": "yes"}\n', ":1: `stream` is 'yes'"),
    ("t.jsonl", '{"ts": 1, "duration_ms": 2, "status": 2000}\n', ":1: `status` is 2000"),
    ("t.jsonl", "\n\n", ": no LLM calls in it as jsonl; give one JSON record per line"),
    (
        "t.har",
        '{"log": {"entries": [{"request": {"url": "http://h/v1/responses"}, "response": {}}]}}',
        ": entry log.entries[0]: `startedDateTime` is missing",
    ),
    ("t.har", '{"log": {"pages": []}}', ": entry log: a HAR file holds `log.entries`"),
    (
        "t.json",
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": '
        '"gen_ai.operation.name", "value": {"stringValue": "chat"}}], '
        '"startTimeUnixNano": 5}]}]}]}',
        ": entry resourceSpans[0].scopeSpans[0].spans[0]: `endTimeUnixNano` is None",
    ),
    (
        "t.json",
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "GET"}]}]}]}',
        ": no LLM calls in it as otel; only spans with gen_ai.operation.name chat",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD)
def test_bad_traces_are_one_line_naming_file_and_line_or_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out.yaml"
    assert main(["import", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness import: error: {path}{message}"), err
    assert err.count("\n") == 1
    assert not out.exists()


def test_a_compression_too_strong_for_the_idle_timeout_says_how_much(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["import", str(DATA / "gateway.har"), "--idle-timeout-ms", "5000", "--compress", "1000"]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "harness import: error: --compress 1000 makes the idle timeout of 5000 ms 5 ms, under "
        "the 20 ms a replay keeps reliably; use --compress 250 or less\n"
    )


def test_a_replay_too_long_is_refused_with_what_to_raise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path, {"ts": 0, "duration_ms": 1}, {"ts": 3000, "duration_ms": 1})
    args = ["import", str(path), "--idle-timeout-ms", "100", "--compress", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness import: error: {path}: the replay at --compress 1 is not a")
    assert err.rstrip().endswith("raise --compress")


def test_the_output_is_never_the_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path, {"ts": 0, "duration_ms": 1})
    before = path.read_text(encoding="utf-8")
    assert main(["import", str(path), "-o", str(path)]) == 2
    assert "is the trace itself" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == before


def test_more_sessions_than_a_scenario_runs_is_refused_with_what_to_do() -> None:
    trace = _trace(*((f"s{i}", i * 0.01, 1) for i in range(257)))
    with pytest.raises(UsageError) as caught:
        plan(trace, compress=1, idle_timeout_ms=1000)
    assert str(caught.value) == (
        "the trace has 257 sessions; a scenario runs at most 256: import a shorter stretch of "
        "it (fewer sessions at once)"
    )


def test_server_side_genai_spans_are_not_calls(tmp_path: Path) -> None:
    document = json.loads((DATA / "gateway.otel.json").read_text(encoding="utf-8"))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["kind"] = "SPAN_KIND_SERVER"  # a proxy's view of the first call
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert [c.session for c in read_trace(path).calls] == ["c1", "c2"]
