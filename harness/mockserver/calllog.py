"""The mock server's detailed call log: the most recent calls, in a fixed amount of memory.

A soak run makes millions of calls; a Python object per call (a list or a dataclass costs
300-400 bytes) would grow the server's RSS without bound. :class:`CallLog` keeps the most
recent ``limit`` calls as fixed-size binary records (40 bytes each) in one ``bytearray`` used
as a ring: call ``index`` lives in slot ``(index - 1) % limit`` until a call ``limit`` later
overwrites it. Strings (paths, fault kinds) are stored as small codes into a table of the
distinct values seen. Exact totals are the ledger's job (:mod:`.faults`); this is the detail.

Not thread-safe: :class:`~harness.mockserver.faults.CallLedger` calls it under its lock.
"""

from __future__ import annotations

import struct
from typing import Final

from harness.result import ServerCall

__all__ = ["DEFAULT_CALL_LOG_LIMIT", "CallLog"]

DEFAULT_CALL_LOG_LIMIT: Final = 10_000
MAX_COUNTER: Final = 2**32 - 1  # connection ids and retry counts are stored in 32 bits

# index, connection, path code, fault code (0: none), stream, status, retry count, started_s,
# duration_ms
_RECORD: Final = struct.Struct("<QIIB?HIdd")
_STATUS: Final = struct.Struct("<H")
_DURATION: Final = struct.Struct("<d")
_STATUS_AT: Final = struct.calcsize("<QIIB?")  # byte offsets inside a record
_DURATION_AT: Final = struct.calcsize("<QIIB?HId")


class CallLog:
    """The last ``limit`` calls (0: none), each settable until it is overwritten."""

    def __init__(self, limit: int = DEFAULT_CALL_LOG_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"call log limit {limit} is negative; use 0 to keep no calls")
        self.limit = limit
        self._ring = bytearray()  # grows to limit records, then is overwritten in place
        self._last = 0  # the highest index added
        self._strings: list[str | None] = [None]  # code -> string; code 0 is None
        self._codes: dict[str | None, int] = {None: 0}

    def add(
        self,
        index: int,
        connection: int,
        path: str,
        stream: bool,
        retry_count: int,
        fault: str | None,
        started_s: float,
    ) -> None:
        """Record call ``index`` (one more than the last) with status 0 and no duration."""
        self._last = index
        if not self.limit:
            return
        record = _RECORD.pack(
            index,
            min(connection, MAX_COUNTER),
            self._code(path),
            self._code(fault),
            stream,
            0,
            min(retry_count, MAX_COUNTER),
            started_s,
            0.0,
        )
        offset = self._offset(index)
        if offset == len(self._ring):
            self._ring += record
        else:
            self._ring[offset : offset + _RECORD.size] = record

    def finish(self, index: int, status: int, duration_ms: float) -> None:
        """Set how call ``index`` ended; a no-op once a later call has taken its slot."""
        if not self.limit or index <= self._last - self.limit or index > self._last:
            return
        offset = self._offset(index)
        _STATUS.pack_into(self._ring, offset + _STATUS_AT, status)
        _DURATION.pack_into(self._ring, offset + _DURATION_AT, duration_ms)

    def calls(self) -> tuple[ServerCall, ...]:
        """The kept calls in index order."""
        first = max(1, self._last - self.limit + 1)
        return tuple(self._call(index) for index in range(first, self._last + 1))

    def _call(self, index: int) -> ServerCall:
        fields = _RECORD.unpack_from(self._ring, self._offset(index))
        stored, connection, path, fault, stream, status, retry, started, duration = fields
        assert stored == index, f"call log slot holds call {stored}, not {index}"
        path_text = self._strings[path]
        assert path_text is not None
        return ServerCall(
            index, connection, path_text, stream, status, retry, self._strings[fault], started,
            duration,
        )  # fmt: skip

    def _offset(self, index: int) -> int:
        return ((index - 1) % self.limit) * _RECORD.size

    def _code(self, text: str | None) -> int:
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self._strings)
            self._strings.append(text)
        return code
