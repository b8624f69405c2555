"""A :class:`~.replay.Replay` as a commented scenario file (schema v1, ``session.timeline``).

The text is written by hand, not dumped, so that each value can carry the comment that
explains it (the trace's gap beside the replayed one). Every string in it is JSON-quoted,
which YAML reads as the same string, so no trace value can change the file's structure.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Final

from harness.importer.replay import Replay, ReplayCall, ReplaySession

__all__ = ["render"]

# The client timeout the replay sets: a call that hangs fails in this long, not in 600 s.
_MIN_TIMEOUT_S: Final = 30


def render(replay: Replay, name: str) -> str:
    """The scenario file's text."""
    lines = [*_header(replay), "version: 1", f"name: {_quote(name)}"]
    lines.append(f"description: {_quote(_description(replay))}")
    timeout = max(_MIN_TIMEOUT_S, int(replay.latency_ms * 3 / 1000) + 1)
    lines += [
        "server:",
        f"  latency_ms: {_num(replay.latency_ms)}  # the trace's median call duration, compressed",
        "  keepalive:",
        f"    idle_timeout_ms: {_num(replay.server_idle_ms)}"
        f"  # the provider's {_num(replay.idle_timeout_ms)} ms, compressed",
        "    close: fin",
        "client:",
        f"  kwargs: {{timeout: {timeout}}}",
        "session:",
        "  timeline:",
    ]
    for session in replay.sessions:
        lines += _session(session)
    lines += [
        "expect:",
        "  errors: 0",
        "  # a gateway still running holds no reaped socket once garbage is collected",
        "  close_wait_live_after_gc: 0",
    ]
    return "\n".join(lines) + "\n"


def _header(replay: Replay) -> list[str]:
    trace, gaps = replay.trace, replay.gaps()
    inner = [g for g in gaps if g.trace_ms is not None]
    longer, clamped = sum(g.longer for g in inner), sum(g.clamped for g in inner)
    overlapped = sum(g.overlapped for g in inner)
    margin = replay.margin_ms
    first = min(c.start_s for c in trace.calls)
    text = [
        f"Imported by `harness import` from {_quote(trace.path)} ({trace.fmt}): "
        f"{_plural(len(trace.calls), 'call')} in {_plural(len(replay.sessions), 'session')} "
        f"from {_time(first)}.",
        f"Time runs {replay.compress:g}x faster: the provider's idle timeout of "
        f"{_num(replay.idle_timeout_ms)} ms is {_num(replay.server_idle_ms)} ms here.",
        f"Gaps between calls: {longer} longer than the idle timeout, replayed at >= "
        f"{_num(replay.server_idle_ms + margin)} ms; {len(inner) - longer} shorter, at <= "
        f"{_num(replay.server_idle_ms - margin)} ms ({clamped} moved to keep that margin).",
        "After each session's last call it idles like a longer gap (the trace ends there).",
        f"Not replayed: each call's own duration (one latency_ms) and how calls ended "
        f"({_outcomes(replay)}); the mock provider answers every call.",
    ]
    if overlapped:
        text.append(
            f"{overlapped} calls started before the previous call of their session ended; "
            "they follow it at once."
        )
    return [f"# {line}" for line in text]


def _outcomes(replay: Replay) -> str:
    counts = Counter(
        c.error or (str(c.status) if c.status else "no status") for c in replay.trace.calls
    )
    return ", ".join(f"{n} x {what}" for what, n in counts.most_common())


def _description(replay: Replay) -> str:
    trace = replay.trace
    return (
        f"Replay of {_plural(len(trace.calls), 'LLM call')} in "
        f"{_plural(len(replay.sessions), 'session')} from "
        f"{trace.path} ({trace.fmt}), {replay.compress:g}x faster, every gap on its side of "
        "the idle timeout."
    )


def _session(session: ReplaySession) -> list[str]:
    count, first_call = len(session.calls), session.calls[0].call
    first = first_call.start_s
    return [
        f"    # trace session {_quote(first_call.session)}: {_plural(count, 'call')} "
        f"from {_time(first)}",
        f"    - name: {_quote(session.name)}",
        f"      start_ms: {_num(session.start_ms)}",
        "      calls:",
        *(_call(call) for call in session.calls),
    ]


def _call(call: ReplayCall) -> str:
    gap = call.gap
    stream = "true" if call.call.stream else "false"
    if gap.trace_ms is None:
        note = "the trace ends: idle past the timeout"
    else:
        side = "longer" if gap.longer else "shorter"
        note = f"trace gap {_num(gap.trace_ms)} ms, {side}"
        if gap.overlapped:
            note += " (overlapped: 0)"
        elif gap.clamped:
            note += ", moved to keep the margin"
    return f"        - {{stream: {stream}, idle_ms: {_num(gap.replay_ms)}}}  # {note}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _time(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)
