"""RunResult: derived metrics computed once from raw records, and the dict round trip."""

from __future__ import annotations

import json

from harness.result import (
    CallRecord,
    RunResult,
    ServerCall,
    ServerStats,
    SocketSample,
    percentile,
    summarize,
)


def _records() -> list[CallRecord]:
    return [
        CallRecord(session=0, turn=1, round=1, ok=True, latency_ms=10.0, started_s=0.0),
        CallRecord(
            session=0,
            turn=2,
            round=1,
            ok=False,
            latency_ms=1200.0,
            started_s=0.1,
            error_type="openai.APIConnectionError",
            error_chain=(
                "openai.APIConnectionError: Connection error.",
                "RuntimeError: Cannot send a request, as the client has been closed.",
            ),
        ),
        CallRecord(
            session=0,
            turn=3,
            round=1,
            ok=False,
            latency_ms=30.0,
            started_s=1.4,
            error_type="openai.APIConnectionError",
        ),
        CallRecord(session=0, turn=4, round=1, ok=True, latency_ms=20.0, started_s=1.5),
    ]


def _samples() -> list[SocketSample]:
    return [
        SocketSample("start", close_wait=0, established=0, fds=10),
        *(
            SocketSample(f"turn {t}", close_wait=t - 1, established=1, fds=10 + t, turn=t)
            for t in range(1, 5)
        ),
        SocketSample("after close", close_wait=2, established=0, fds=12),
        SocketSample("after gc", close_wait=0, established=0, fds=10),
    ]


def _server() -> ServerStats:
    return ServerStats(
        connections=3,
        requests_per_connection=(2, 3, 1),
        retry_counts=(0, 0, 1, 2, 0, 0),
        faults_fired={"reset_on_reuse": 2},
        calls=(ServerCall(1, 1, "/v1/chat/completions", False, 200, 0),),
    )


def _result() -> RunResult:
    return summarize(
        scenario="s",
        variant="keepalive-mutating",
        status="completed",
        records=_records(),
        samples=_samples(),
        server=_server(),
        wall_s=1.5,
        environment={"python": "3.11.7"},
    )


def test_summarize_derives_every_metric() -> None:
    r = _result()
    assert (r.calls, r.errors, dict(r.errors_by_type)) == (
        4,
        2,
        {"openai.APIConnectionError": 2},
    )
    assert r.retries == 2
    assert r.close_wait_series == (0, 1, 2, 3)
    assert r.established_series == (1, 1, 1, 1)
    assert r.fds_series == (11, 12, 13, 14)
    assert (r.close_wait_peak, r.close_wait_growth) == (3, 3)
    assert (r.close_wait_after_close, r.close_wait_after_gc) == (2, 0)
    assert r.fds_growth == 4
    assert (r.latency_p50_ms, r.latency_p95_ms, r.latency_max_ms) == (20.0, 1200.0, 1200.0)
    assert r.connections == 3


def test_round_trip_through_json() -> None:
    r = _result()
    again = RunResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.95) == 0.0
    assert percentile([5.0], 0.5) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (
        50.0,
        95.0,
        100.0,
    )


def test_empty_run_has_zero_metrics() -> None:
    r = summarize(
        scenario="s",
        variant="v",
        status="untestable",
        records=[],
        samples=[],
        server=ServerStats(),
        wall_s=0.1,
        environment={},
        detail="cannot import",
    )
    assert (r.calls, r.errors, r.close_wait_peak, r.close_wait_growth, r.fds_growth) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert r.detail == "cannot import"
