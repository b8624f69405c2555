"""What a scenario spends on purpose, and how much of that a run may plan by default.

The loader (:mod:`harness.scenario`) refuses a scenario whose :func:`planned_duration_s` is
over the limit (:data:`DEFAULT_MAX_DURATION_S` unless the caller raises it); the matrix
(:mod:`harness.matrix`) orders and estimates its cells by it.
"""

from __future__ import annotations

import math
from typing import Final

from harness.schema import HttpError, Scenario, Stall

__all__ = ["DEFAULT_MAX_DURATION_S", "planned_duration_s"]

# A scenario that plans to spend longer than this on purpose is refused unless the caller
# raises the limit (--max-duration): a typo like 100000 turns must not start a day-long run.
DEFAULT_MAX_DURATION_S: Final = 600.0


def planned_duration_s(scenario: Scenario) -> float:
    """Seconds the scenario spends on purpose: idle gaps, latency, chunk delays and stalls.

    An upper bound for one session (sessions run in parallel), counting every stall as if
    each call it selects were in the same session. Timeouts and retries are not planned and
    are not counted here (the watchdog bounds them).
    """
    session, server = scenario.session, scenario.server
    calls = session.turns * session.calls_per_turn
    chunks = server.reply.chunks if session.streams() else 0
    per_call_ms = server.latency_ms + chunks * server.reply.chunk_delay_ms
    stall_ms = 0.0
    for fault in server.faults:
        if isinstance(fault, Stall):
            each = fault.ms * (1 if fault.at == "first_byte" else max(chunks, 1))
            stall_ms += each * (calls if fault.calls is None else len(fault.calls))
        elif isinstance(fault, HttpError) and fault.retry_after_s is not None:
            # the SDK waits retry-after before each retry of a selected call
            selected = calls if fault.calls is None else len(fault.calls)
            stall_ms += fault.retry_after_s * 1000 * selected
    total_ms = session.turns * session.idle_between_turns_ms + calls * per_call_ms + stall_ms
    total_ms += session.timeline_idle_ms()
    return total_ms / 1000 if math.isfinite(total_ms) else math.inf
