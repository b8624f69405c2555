"""The mock server's call log as a JSON Lines trace, the format :mod:`.jsonl` reads.

One record per API call the log kept (``/v1/chat/completions``, ``/v1/responses``): ``ts``
the seconds since the mock server started (read as epoch seconds: only differences matter),
``session`` the request's ``x-session-id`` header (a timeline's gateway sends it; ``1``
without one), ``duration_ms`` from the request to the last byte of the answer, ``stream``,
``status`` (0: dropped) and ``error`` (the fault the server injected, null for none). This is
what the round-trip tests import again: a run's own trace must replay as itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.importer.har import ENDPOINTS
from harness.report.layout import atomic_write_text
from harness.result import ServerCall

__all__ = ["trace_records", "write_trace"]


def trace_records(calls: Iterable[ServerCall]) -> list[dict[str, Any]]:
    """The API calls among ``calls`` as trace records, in index order."""
    return [
        {
            "ts": round(call.started_s, 6),
            "session": call.session or "1",
            "duration_ms": round(call.duration_ms, 3),
            "stream": call.stream,
            "status": call.status,
            "error": call.fault,
        }
        for call in calls
        if call.path.rstrip("/").endswith(ENDPOINTS)
    ]


def write_trace(calls: Iterable[ServerCall], path: Path) -> int:
    """Write :func:`trace_records` to ``path`` (atomically); return how many."""
    records = trace_records(calls)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return len(records)
