"""Sans-IO fault scheduling and call bookkeeping for the mock server.

Theory of operation
-------------------
Every API request (``/v1/...``, SDK retries included: a retry is a new request) gets the next
1-based call index when its headers and body have arrived. :func:`select_fault` then picks at
most one fault for that call: the first fault in the scenario's list that

* selects the index (``calls`` is None, meaning every call, or contains it), and
* can apply: ``reset_on_reuse`` only to a request on an already-used connection (its 2nd or
  later request), ``truncate_stream`` only to a streamed request.

One fault per call keeps a run explainable: a call record names the single fault that shaped
it, and the order of ``faults:`` in the scenario is the tie-break. ``latency_ms`` and idle
keep-alive reaping are not per-call faults; reaping is counted in ``faults_fired`` under
``"idle_close"`` so a report can show how many connections the server closed.

:class:`CallLedger` numbers calls, names connections (1-based, in the order each carried its
first API request, so control-path and malformed traffic never count as connections) and
produces frozen :class:`~harness.result.ServerStats` snapshots. The socket loop runs in its own
thread while ``stats()`` and ``reset()`` come from others, so the ledger takes a lock; the
clock is passed in.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.result import ServerCall, ServerStats
from harness.scenario import Fault, ResetOnReuse, TruncateStream

__all__ = ["IDLE_CLOSE", "CallLedger", "Ticket", "select_fault"]

IDLE_CLOSE = "idle_close"  # faults_fired key for keep-alive connections reaped when idle
_STATUS, _DURATION = 4, 8  # positions of ServerCall.status and .duration_ms in a call list


def select_fault(
    faults: Sequence[Fault], index: int, *, reused: bool, stream: bool
) -> Fault | None:
    """The fault that fires on call ``index``, or None; see the module docstring."""
    for fault in faults:
        if fault.calls is not None and index not in fault.calls:
            continue
        if isinstance(fault, ResetOnReuse) and not reused:
            continue
        if isinstance(fault, TruncateStream) and not stream:
            continue
        return fault
    return None


@dataclass(frozen=True, slots=True)
class Ticket:
    """One API call in flight: its index, connection id, the fault it gets, its start time."""

    index: int
    connection: int
    fault: Fault | None
    started: float  # clock reading
    epoch: int  # which reset() generation the call belongs to


class CallLedger:
    """Thread-safe call numbering and statistics; see the module docstring."""

    def __init__(
        self, faults: Sequence[Fault] = (), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._faults = tuple(faults)
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch = 0
        self._clear()

    def _clear(self) -> None:
        self._origin = self._clock()
        self._connection_ids: dict[int, int] = {}  # socket serial -> 1-based connection id
        self._per_connection: list[int] = []
        self._retry_counts: list[int] = []
        self._fired: Counter[str] = Counter()
        # Calls as plain lists in ServerCall field order (index 4: status, 8: duration_ms),
        # mutated in place by finish(); snapshot() turns them into frozen ServerCalls. Per
        # request this costs a list, where building and replace()-ing a ServerCall cost 5 us.
        self._calls: list[list[Any]] = []

    def begin(
        self,
        *,
        socket: int,
        path: str,
        stream: bool,
        retry_count: int,
        reused: bool,
        eligible: bool = True,
    ) -> Ticket:
        """Number a new API call on socket serial ``socket`` and choose its fault.

        ``eligible=False`` (a body the server rejects) records the call without a fault.
        """
        with self._lock:
            index = len(self._retry_counts) + 1
            connection = self._connection_ids.get(socket)
            if connection is None:
                connection = self._connection_ids[socket] = len(self._per_connection) + 1
                self._per_connection.append(0)
            self._per_connection[connection - 1] += 1
            self._retry_counts.append(retry_count)
            fault = (
                select_fault(self._faults, index, reused=reused, stream=stream)
                if eligible
                else None
            )
            if fault is not None:
                self._fired[fault.kind] += 1
            now = self._clock()
            kind = None if fault is None else fault.kind
            self._calls.append(
                [index, connection, path, stream, 0, retry_count, kind, now - self._origin, 0.0]
            )
            return Ticket(index, connection, fault, now, self._epoch)

    def finish(self, ticket: Ticket, status: int) -> None:
        """Record how call ``ticket`` ended: the status sent, or 0 when dropped."""
        with self._lock:
            if ticket.epoch != self._epoch:
                return  # the call began before a reset(); its numbers no longer exist
            call = self._calls[ticket.index - 1]
            call[_STATUS] = status
            call[_DURATION] = (self._clock() - ticket.started) * 1000

    def note(self, kind: str) -> None:
        """Count a connection-level event such as :data:`IDLE_CLOSE`."""
        with self._lock:
            self._fired[kind] += 1

    def snapshot(self) -> ServerStats:
        """A frozen copy of the counts; calls in index order (status 0: dropped or in flight)."""
        with self._lock:
            return ServerStats(
                connections=len(self._per_connection),
                requests_per_connection=tuple(self._per_connection),
                retry_counts=tuple(self._retry_counts),
                faults_fired=dict(self._fired),
                calls=tuple(ServerCall(*call) for call in self._calls),
            )

    def reset(self) -> None:
        """Zero every count and the call index; calls in flight are not recorded."""
        with self._lock:
            self._epoch += 1
            self._clear()
