"""The bounded call log and the ledger's exact totals beside it, without sockets."""

from __future__ import annotations

import pytest

from harness.mockserver.calllog import CallLog
from harness.mockserver.faults import CallLedger
from harness.result import ServerCall, ServerStats
from harness.scenario import HttpError


def _add(log: CallLog, index: int, *, retry: int = 0, fault: str | None = None) -> None:
    log.add(index, 1, "/v1/responses", index % 2 == 0, retry, fault, index / 10)


def test_the_log_keeps_the_last_calls_and_finishes_only_those() -> None:
    log = CallLog(limit=3)
    for index in range(1, 6):
        _add(log, index, fault="stall" if index == 4 else None)
    log.finish(2, 200, 5.0)  # overwritten by call 5: ignored
    log.finish(4, 503, 1.5)
    log.finish(9, 200, 1.0)  # never added: ignored
    assert log.calls() == (
        ServerCall(3, 1, "/v1/responses", False, 0, 0, None, 0.3, 0.0),
        ServerCall(4, 1, "/v1/responses", True, 503, 0, "stall", 0.4, 1.5),
        ServerCall(5, 1, "/v1/responses", False, 0, 0, None, 0.5, 0.0),
    )


def test_a_zero_limit_keeps_nothing() -> None:
    empty = CallLog(limit=0)
    _add(empty, 1)
    empty.finish(1, 200, 1.0)
    assert empty.calls() == ()
    with pytest.raises(ValueError, match="call log limit -1 is negative"):
        CallLog(limit=-1)


def test_ledger_totals_stay_exact_beyond_the_log() -> None:
    ledger = CallLedger((HttpError(status=500, calls=(1, 2)),), call_log_limit=2)
    for number in range(5):
        ticket = ledger.begin(
            socket=number % 2,
            path="/v1/models",
            stream=False,
            retry_count=number % 3,
            reused=number > 1,
        )
        ledger.finish(ticket, 200)
    ledger.forget(0)
    ledger.begin(socket=0, path="/v1/models", stream=False, retry_count=0, reused=False)
    stats = ledger.snapshot()
    assert (stats.total_calls, stats.retries, stats.connections) == (6, 3, 3)
    assert stats.requests_per_connection == (3, 2, 1)  # socket 0 reopened: a new connection
    assert stats.faults_fired == {"http_error": 2}
    assert [(c.index, c.connection) for c in stats.calls] == [(5, 1), (6, 3)]
    assert stats.retry_counts == (1, 0)


def test_server_stats_totals_round_trip_and_default_from_the_listed_calls() -> None:
    listed = ServerStats(retry_counts=(0, 2, 1))
    assert (listed.total_calls, listed.retries) == (3, 2)
    windowed = ServerStats(retry_counts=(0, 1), total_calls=50, total_retries=7)
    assert ServerStats.from_dict(windowed.to_dict()) == windowed
    old_file = {k: v for k, v in listed.to_dict().items() if not k.startswith("total_")}
    assert ServerStats.from_dict(old_file) == listed
