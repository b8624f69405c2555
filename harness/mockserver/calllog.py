"""The mock server's detailed call log: the most recent calls, in a bounded amount of memory.

A soak run makes millions of calls; one record per call kept forever would grow the server's
RSS without bound. :class:`CallLog` keeps the most recent ``limit`` calls in a ring: call
``index`` lives in slot ``(index - 1) % limit`` until the call ``limit`` later takes the
slot. A record is a plain list in :class:`~harness.result.ServerCall` field order, mutated in
place when the call ends (building and ``replace()``-ing a frozen ServerCall per request
cost 5 us; a list costs a fraction of that, and about 200 bytes). Exact totals are the
ledger's job (:mod:`.faults`); this is the detail.

Not thread-safe: :class:`~harness.mockserver.faults.CallLedger` calls it under its lock.
"""

from __future__ import annotations

from typing import Any, Final

from harness.result import ServerCall

__all__ = ["DEFAULT_CALL_LOG_LIMIT", "CallLog"]

DEFAULT_CALL_LOG_LIMIT: Final = 10_000
_STATUS, _DURATION = 4, 8  # positions of ServerCall.status and .duration_ms in a record


class CallLog:
    """The last ``limit`` calls (0: none), each settable until it is overwritten."""

    def __init__(self, limit: int = DEFAULT_CALL_LOG_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"call log limit {limit} is negative; use 0 to keep no calls")
        self.limit = limit
        self._ring: list[list[Any]] = []  # grows to limit records, then slots are reused
        self._last = 0  # the highest index added

    def add(
        self,
        index: int,
        connection: int,
        path: str,
        stream: bool,
        retry_count: int,
        fault: str | None,
        started_s: float,
        session: str = "",
    ) -> None:
        """Record call ``index`` (one more than the last) with status 0 and no duration."""
        self._last = index
        record = [index, connection, path, stream, 0, retry_count, fault, started_s, 0.0, session]
        if index <= self.limit:
            self._ring.append(record)
        elif self.limit:
            self._ring[(index - 1) % self.limit] = record

    def finish(self, index: int, status: int, duration_ms: float) -> None:
        """Set how call ``index`` ended; a no-op once a later call has taken its slot."""
        if not self.limit or index <= self._last - self.limit or index > self._last:
            return
        record = self._ring[(index - 1) % self.limit]
        record[_STATUS] = status
        record[_DURATION] = duration_ms

    def calls(self) -> tuple[ServerCall, ...]:
        """The kept calls in index order."""
        first = max(1, self._last - self.limit + 1)
        ring, limit = self._ring, self.limit
        return tuple(
            ServerCall(*ring[(index - 1) % limit]) for index in range(first, self._last + 1)
        )
