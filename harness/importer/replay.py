"""How a trace becomes a replay: time compression that keeps every gap on its side.

Theory of operation. What decides this bug class is each idle gap between a session's calls
measured against the provider's keep-alive idle timeout ``T``: a gap longer than ``T`` finds
its pooled connection reaped, a shorter one reuses it. A replay ``F`` times faster divides
every time by ``F``, the idle timeout included (``server.keepalive.idle_timeout_ms = T / F``),
which keeps each gap on its side in theory; in practice the replay adds a few milliseconds
of client work to every gap, so a compressed gap too close to ``T / F`` could cross it. So
each gap also keeps a margin of :data:`MARGIN` x ``T / F`` from it: a longer gap is replayed
at least that much longer, a shorter one at least that much shorter (``clamped``, shown in
the scenario's comments). The idle after a session's last call is unknown (the trace ends);
it is replayed as a longer gap, so the sockets a session leaves idle are reaped before the
run's last samples, as in a gateway that keeps running.

Session starts are compressed the same way. Call durations are not replayed one by one (the
mock server has one ``latency_ms``): the replay uses their median, compressed. A call that
started before the previous call of its session ended (``overlapped``) follows it at once.
A session keeps its name (its requests' ``x-session-id``) unless a header cannot carry it:
then it is ``session-N``, and the original is in the scenario's comment.
Everything here is pure: a :class:`Replay` is computed from a :class:`~.model.Trace` alone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Final

from harness.errors import UsageError
from harness.importer.model import Trace, TraceCall
from harness.schema import MAX_SESSIONS, MAX_TURNS, is_header_value

__all__ = [
    "MARGIN",
    "MIN_IDLE_TIMEOUT_MS",
    "TARGET_IDLE_TIMEOUT_MS",
    "Gap",
    "Replay",
    "ReplayCall",
    "ReplaySession",
    "auto_compress",
    "plan",
]

MARGIN: Final = 0.3  # of the replay's idle timeout, between it and any gap
# Below this the replay's timing is at the mercy of the machine's scheduling.
MIN_IDLE_TIMEOUT_MS: Final = 20.0
# The default compression aims here: twice the bundled scenarios' idle timeout, so that a
# shorter gap keeps 60 ms from it, more than a busy machine adds to a gap (10-25 ms measured).
TARGET_IDLE_TIMEOUT_MS: Final = 200.0


@dataclass(frozen=True)
class Gap:
    """An idle gap after a call: as in the trace (None: after the session's last call) and as
    replayed; ``longer``: longer than the idle timeout in the trace."""

    trace_ms: float | None
    replay_ms: float
    longer: bool
    clamped: bool = False
    overlapped: bool = False


@dataclass(frozen=True)
class ReplayCall:
    call: TraceCall
    gap: Gap  # the idle after it


@dataclass(frozen=True)
class ReplaySession:
    name: str
    start_ms: float  # compressed, after the trace's first call
    calls: tuple[ReplayCall, ...]


@dataclass(frozen=True)
class Replay:
    """A trace's replay plan: its compression, idle timeouts, latency and sessions."""

    trace: Trace
    compress: float
    idle_timeout_ms: float  # the provider's, in the trace's time
    server_idle_ms: float  # the replay's: idle_timeout_ms / compress
    latency_ms: float
    sessions: tuple[ReplaySession, ...]

    @property
    def margin_ms(self) -> float:
        return MARGIN * self.server_idle_ms

    def gaps(self) -> list[Gap]:
        return [c.gap for s in self.sessions for c in s.calls]


def auto_compress(idle_timeout_ms: float) -> float:
    """The default factor: the replay's idle timeout becomes :data:`TARGET_IDLE_TIMEOUT_MS`
    (never slower than real time)."""
    return max(1.0, idle_timeout_ms / TARGET_IDLE_TIMEOUT_MS)


def plan(trace: Trace, *, compress: float, idle_timeout_ms: float) -> Replay:
    """The replay of ``trace`` ``compress`` times faster, for a provider that reaps
    connections idle ``idle_timeout_ms``; UsageError when the replay's timeout is too short."""
    server_idle = idle_timeout_ms / compress
    if server_idle < MIN_IDLE_TIMEOUT_MS:
        most = idle_timeout_ms / MIN_IDLE_TIMEOUT_MS
        raise UsageError(
            f"--compress {compress:g} makes the idle timeout of {idle_timeout_ms:g} ms "
            f"{server_idle:.3g} ms, under the {MIN_IDLE_TIMEOUT_MS:g} ms a replay keeps reliably; "
            f"use --compress {most:g} or less"
        )
    margin = MARGIN * server_idle
    sessions = trace.sessions()
    _check_size(sessions)
    t0 = min(call.start_s for call in trace.calls)

    def gap(after: TraceCall, following: TraceCall | None) -> Gap:
        if following is None:  # the trace ends: idle like a longer gap
            return Gap(None, _ms(server_idle + margin), longer=True)
        trace_ms = round((following.start_s - after.end_s) * 1000, 3)  # float noise off
        longer = trace_ms > idle_timeout_ms
        wanted = max(trace_ms, 0.0) / compress
        bound = server_idle + margin if longer else server_idle - margin
        replay = max(wanted, bound) if longer else min(wanted, bound)
        return Gap(trace_ms, _ms(replay), longer, replay != wanted, trace_ms < 0)

    return Replay(
        trace=trace,
        compress=compress,
        idle_timeout_ms=idle_timeout_ms,
        server_idle_ms=_ms(server_idle),
        latency_ms=_ms(statistics.median(c.duration_ms for c in trace.calls) / compress),
        sessions=tuple(
            ReplaySession(
                name if is_header_value(name) else f"session-{index}",
                _ms((calls[0].start_s - t0) * 1000 / compress),
                tuple(
                    ReplayCall(call, gap(call, calls[i + 1] if i + 1 < len(calls) else None))
                    for i, call in enumerate(calls)
                ),
            )
            for index, (name, calls) in enumerate(sessions.items(), 1)
        ),
    )


def _check_size(sessions: dict[str, tuple[TraceCall, ...]]) -> None:
    """A scenario runs at most 256 sessions at once, of at most 100,000 calls each."""
    if len(sessions) > MAX_SESSIONS:
        raise UsageError(
            f"the trace has {len(sessions)} sessions; a scenario runs at most {MAX_SESSIONS}: "
            "import a shorter stretch of it (fewer sessions at once)"
        )
    name, calls = max(sessions.items(), key=lambda item: len(item[1]))
    if len(calls) > MAX_TURNS:
        raise UsageError(
            f"session {name!r} has {len(calls)} calls; a scenario session makes at most "
            f"{MAX_TURNS}: import a shorter stretch of the trace"
        )


def _ms(value: float) -> float:
    """Milliseconds to a tenth: what a scenario file shows."""
    return round(value, 1)
