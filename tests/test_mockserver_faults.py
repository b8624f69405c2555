"""The sans-IO fault scheduler and call ledger: which fault fires on which call, and counts."""

from __future__ import annotations

import threading

from harness.mockserver.faults import IDLE_CLOSE, CallLedger, select_fault
from harness.result import ServerCall, ServerStats
from harness.scenario import HttpError, ResetOnReuse, Stall, TruncateStream


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_faults_never_fire() -> None:
    assert select_fault((), 1, reused=True, stream=True) is None


def test_calls_none_selects_every_call_and_a_list_only_its_calls() -> None:
    every = HttpError(status=500)
    some = HttpError(status=429, calls=(2, 4))
    assert [select_fault((every,), i, reused=False, stream=False) for i in (1, 7)] == [every] * 2
    assert [select_fault((some,), i, reused=False, stream=False) for i in range(1, 6)] == [
        None,
        some,
        None,
        some,
        None,
    ]


def test_reset_on_reuse_needs_a_reused_connection() -> None:
    fault = ResetOnReuse(mode="fin")
    assert select_fault((fault,), 1, reused=False, stream=False) is None
    assert select_fault((fault,), 1, reused=True, stream=False) is fault


def test_truncate_stream_needs_a_stream() -> None:
    fault = TruncateStream(after_chunks=2)
    assert select_fault((fault,), 3, reused=False, stream=False) is None
    assert select_fault((fault,), 3, reused=False, stream=True) is fault


def test_first_applicable_fault_in_list_order_wins() -> None:
    reuse = ResetOnReuse()
    stall = Stall(ms=5, calls=(1, 2))
    error = HttpError(status=503, calls=(2,))
    faults = (reuse, stall, error)
    assert select_fault(faults, 2, reused=True, stream=False) is reuse
    assert select_fault(faults, 2, reused=False, stream=False) is stall
    assert select_fault((error, stall), 2, reused=False, stream=False) is error


def test_ledger_numbers_calls_and_names_connections_lazily() -> None:
    clock = FakeClock()
    ledger = CallLedger((HttpError(status=429, calls=(2,)),), clock)
    clock.now = 101.0
    first = ledger.begin(
        socket=7, path="/v1/chat/completions", stream=False, retry_count=0, reused=False
    )
    clock.now = 101.25
    ledger.finish(first, 200)
    second = ledger.begin(socket=9, path="/v1/responses", stream=True, retry_count=0, reused=False)
    ledger.finish(second, 429)
    third = ledger.begin(socket=7, path="/v1/models", stream=False, retry_count=1, reused=True)
    assert (first.index, second.index, third.index) == (1, 2, 3)
    assert (first.connection, second.connection, third.connection) == (1, 2, 1)
    assert second.fault == HttpError(status=429, calls=(2,))
    assert ledger.snapshot() == ServerStats(
        connections=2,
        requests_per_connection=(2, 1),
        retry_counts=(0, 0, 1),
        faults_fired={"http_error": 1},
        calls=(
            ServerCall(1, 1, "/v1/chat/completions", False, 200, 0, None, 1.0, 250.0),
            ServerCall(2, 2, "/v1/responses", True, 429, 0, "http_error", 1.25, 0.0),
            ServerCall(3, 1, "/v1/models", False, 0, 1, None, 1.25, 0.0),  # in flight
        ),
    )


def test_ineligible_call_is_counted_without_a_fault() -> None:
    ledger = CallLedger((HttpError(),))
    ticket = ledger.begin(
        socket=1, path="/v1/responses", stream=False, retry_count=0, reused=False, eligible=False
    )
    assert ticket.fault is None
    assert ledger.snapshot().faults_fired == {}


def test_snapshot_is_a_copy_and_note_counts_idle_closes() -> None:
    ledger = CallLedger()
    before = ledger.snapshot()
    ledger.note(IDLE_CLOSE)
    ledger.note(IDLE_CLOSE)
    ledger.begin(socket=1, path="/v1/models", stream=False, retry_count=0, reused=False)
    assert before == ServerStats()
    assert ledger.snapshot().faults_fired == {"idle_close": 2}


def test_reset_zeroes_counts_and_ignores_calls_from_before() -> None:
    clock = FakeClock()
    ledger = CallLedger((), clock)
    old = ledger.begin(socket=1, path="/v1/models", stream=False, retry_count=2, reused=False)
    clock.now = 150.0
    ledger.reset()
    ledger.finish(old, 200)
    assert ledger.snapshot() == ServerStats()
    new = ledger.begin(socket=1, path="/v1/models", stream=False, retry_count=0, reused=True)
    assert (new.index, new.connection) == (1, 1)
    assert ledger.snapshot().calls[0].started_s == 0.0


def test_concurrent_begins_get_distinct_indices() -> None:
    ledger = CallLedger()
    indices: list[int] = []
    lock = threading.Lock()

    def work(serial: int) -> None:
        for _ in range(200):
            ticket = ledger.begin(
                socket=serial, path="/v1/models", stream=False, retry_count=0, reused=False
            )
            with lock:
                indices.append(ticket.index)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(indices) == list(range(1, 801))
    assert ledger.snapshot().requests_per_connection == (200, 200, 200, 200)
