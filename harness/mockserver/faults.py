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
from array import array
from collections import Counter
from collections.abc import Callable, Sequence

from harness.mockserver.calllog import DEFAULT_CALL_LOG_LIMIT, CallLog
from harness.result import ServerStats
from harness.schema import Fault, ResetOnReuse, TruncateStream

__all__ = ["IDLE_CLOSE", "CallLedger", "Ticket", "select_fault"]

IDLE_CLOSE = "idle_close"  # faults_fired key for keep-alive connections reaped when idle


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


class Ticket:
    """One API call in flight: its index, connection id, the fault it gets, its start time.

    Read-only by convention: a plain slotted class, since one is built per request and a
    frozen dataclass costs about 1.5 us more to build."""

    __slots__ = ("connection", "epoch", "fault", "index", "started")

    def __init__(
        self, index: int, connection: int, fault: Fault | None, started: float, epoch: int
    ) -> None:
        self.index = index
        self.connection = connection
        self.fault = fault
        self.started = started  # clock reading
        self.epoch = epoch  # which reset() generation the call belongs to

    def __repr__(self) -> str:
        return f"Ticket(index={self.index}, connection={self.connection}, fault={self.fault!r})"


class CallLedger:
    """Thread-safe call numbering and statistics; see the module docstring.

    Memory does not grow with the call count: totals and per-connection counts are exact,
    the per-call detail (``calls``, ``retry_counts``) covers the last ``call_log_limit``
    calls (:class:`~harness.mockserver.calllog.CallLog`), and a socket's connection id is
    dropped when the socket closes (:meth:`forget`).
    """

    def __init__(
        self,
        faults: Sequence[Fault] = (),
        clock: Callable[[], float] = time.monotonic,
        *,
        call_log_limit: int = DEFAULT_CALL_LOG_LIMIT,
    ) -> None:
        self._faults = tuple(faults)
        self._clock = clock
        self._limit = call_log_limit
        self._lock = threading.Lock()
        self._epoch = 0
        self._clear()

    def _clear(self) -> None:
        self._origin = self._clock()
        self._connection_ids: dict[int, int] = {}  # open socket serial -> 1-based id
        self._per_connection = array("L")  # 8 bytes per connection that carried a call
        self._total = 0
        self._retried = 0
        self._fired: Counter[str] = Counter()
        self._log = CallLog(self._limit)

    def begin(
        self,
        *,
        socket: int,
        path: str,
        stream: bool,
        retry_count: int,
        reused: bool,
        eligible: bool = True,
        session: str = "",
    ) -> Ticket:
        """Number a new API call on socket serial ``socket`` and choose its fault.

        ``eligible=False`` (a body the server rejects) records the call without a fault;
        ``session`` is the request's ``x-session-id`` header ("" without one).
        """
        with self._lock:
            self._total = index = self._total + 1
            self._retried += retry_count > 0
            connection = self._connection_ids.get(socket)
            if connection is None:
                connection = self._connection_ids[socket] = len(self._per_connection) + 1
                self._per_connection.append(0)
            self._per_connection[connection - 1] += 1
            fault = (
                select_fault(self._faults, index, reused=reused, stream=stream)
                if eligible
                else None
            )
            if fault is not None:
                self._fired[fault.kind] += 1
            now = self._clock()
            kind = None if fault is None else fault.kind
            started = now - self._origin
            self._log.add(index, connection, path, stream, retry_count, kind, started, session)
            return Ticket(index, connection, fault, now, self._epoch)

    def finish(self, ticket: Ticket, status: int) -> None:
        """Record how call ``ticket`` ended: the status sent, or 0 when dropped."""
        with self._lock:
            if ticket.epoch != self._epoch:
                return  # the call began before a reset(); its numbers no longer exist
            self._log.finish(ticket.index, status, (self._clock() - ticket.started) * 1000)

    def note(self, kind: str) -> None:
        """Count a connection-level event such as :data:`IDLE_CLOSE`."""
        with self._lock:
            self._fired[kind] += 1

    def forget(self, socket: int) -> None:
        """Socket serial ``socket`` has closed: its id is not needed any more."""
        with self._lock:
            self._connection_ids.pop(socket, None)

    def snapshot(self) -> ServerStats:
        """A frozen copy of the counts; calls in index order (status 0: dropped or in flight)."""
        with self._lock:
            calls = self._log.calls()
            return ServerStats(
                connections=len(self._per_connection),
                requests_per_connection=tuple(self._per_connection),
                retry_counts=tuple(call.retry_count for call in calls),
                faults_fired=dict(self._fired),
                calls=calls,
                total_calls=self._total,
                total_retries=self._retried,
            )

    def reset(self) -> None:
        """Zero every count and the call index; calls in flight are not recorded."""
        with self._lock:
            self._epoch += 1
            self._clear()
