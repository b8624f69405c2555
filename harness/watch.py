"""``harness watch``'s core: samples as values, the threshold decisions, and the sampling loop.

Theory of operation. A :class:`Sample` is what one look at the process found: its open fds
and, per remote endpoint (``host:port``), how many TCP sockets are ESTABLISHED, in CLOSE_WAIT
or in any other state. A :class:`Series` takes the samples in order and decides, without any
I/O, which :class:`Thresholds` each one crosses:

- ``max_close_wait``: the CLOSE_WAIT sockets of the sample (every endpoint watched, summed)
  exceed it;
- ``max_growth``: CLOSE_WAIT grew by more than it within the sliding window ``over_s``: the
  sample's count less the lowest count of the samples taken in the ``over_s`` seconds before
  it (itself included). Without ``over_s`` the window is the whole watch so far. A watch
  shorter than the window judges the growth it has seen.

:func:`watch` is the loop around it: a sample every ``interval_s`` on a monotonic schedule
(late samples are not made up for), until ``duration_s`` has passed, the process ends
(:class:`ProcessGone`), or SIGINT/SIGTERM (:class:`~harness.interrupts.Interrupted`, caught:
that is a normal end). The sampler, the clock and the wait are passed in, so tests drive it
without a process or a real clock. The result, a :class:`WatchSummary`, says how it ended and
gives the exit code (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import math
import re
import signal
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from harness.errors import HarnessError
from harness.interrupts import Interrupted

__all__ = [
    "EXIT_CODES",
    "Counts",
    "EndReason",
    "Point",
    "ProcessGone",
    "Sample",
    "Series",
    "Thresholds",
    "WatchSummary",
    "parse_duration",
    "span",
    "watch",
]

EndReason = Literal["duration", "interrupted", "exited"]

EXIT_CODES: Final = {
    "ok": 0,  # watched to the end (--duration, Ctrl-C, SIGTERM), no threshold crossed
    "crossed": 1,  # a threshold was crossed at some sample, however the watch ended
    "usage": 2,  # bad usage, or cannot watch: no such process, access denied
    "exited": 3,  # the process ended before the watch did, no threshold crossed
}

_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``30s``, ``10m``, ``1h``, ``500ms`` or a bare number of seconds;
    ValueError (one line saying what is allowed) for anything else or for 0."""
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)] if match else 0.0
    if not 0 < seconds < math.inf:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30s, 10m, 1h or 500ms (> 0)")
    return seconds


class ProcessGone(HarnessError):
    """The watched process ended (or is a zombie awaiting its parent)."""


@dataclass(frozen=True)
class Counts:
    """TCP sockets toward one endpoint by state."""

    established: int = 0
    close_wait: int = 0
    other: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"established": self.established, "close_wait": self.close_wait, "other": self.other}

    def top(self, more: Counts) -> Counts:
        """The higher of each count."""
        return Counts(
            max(self.established, more.established),
            max(self.close_wait, more.close_wait),
            max(self.other, more.other),
        )

    def __add__(self, more: Counts) -> Counts:
        return Counts(
            self.established + more.established,
            self.close_wait + more.close_wait,
            self.other + more.other,
        )


@dataclass(frozen=True)
class Sample:
    """One look at the process: ``t`` seconds after the first sample, at ``time`` (ISO UTC)."""

    t: float
    time: str
    fds: int
    endpoints: Mapping[str, Counts]  # only endpoints with at least one socket, sorted

    @property
    def total(self) -> Counts:
        return sum(self.endpoints.values(), Counts())


@dataclass(frozen=True)
class Thresholds:
    """What the exit code judges; None: not judged."""

    max_close_wait: int | None = None
    max_growth: int | None = None
    over_s: float | None = None  # the growth window; None: since the first sample

    def judged(self) -> list[tuple[str, str]]:
        """(name, phrase) of each threshold set: the names JSON Lines use, the phrases the
        closing lines and reports print."""
        out = []
        if self.max_close_wait is not None:
            out.append(("max_close_wait", f"CLOSE_WAIT at most {self.max_close_wait}"))
        if self.max_growth is not None:
            window = f"within {span(self.over_s)}" if self.over_s else "since the start"
            out.append(("max_growth", f"CLOSE_WAIT growth at most {self.max_growth} {window}"))
        return out


def span(seconds: float) -> str:
    """``seconds`` as the user would write it: ``10m``, ``1h``, ``1.5s``."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Point:
    """One sample with what the thresholds made of it."""

    sample: Sample
    growth: int  # CLOSE_WAIT growth within the window
    crossed: tuple[str, ...]  # the names of the thresholds crossed


@dataclass
class Series:
    """The samples so far and the threshold decisions on each (see the module docstring)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    points: list[Point] = field(default_factory=list)  # one append per sample: a signal
    # arriving in the middle of :meth:`add` never leaves the lists out of step
    window: deque[tuple[float, int]] = field(default_factory=deque)  # (t, CLOSE_WAIT)
    # Running peaks, so a live view of a day-long watch costs the same as a minute's.
    peaks: dict[str, Counts] = field(default_factory=dict)  # per endpoint ever seen
    total_peak: Counts = Counts()
    fds_peak: int = 0
    growth_peak: int = 0
    first_crossed: dict[str, int] = field(default_factory=dict)  # threshold -> point index

    @property
    def samples(self) -> list[Sample]:
        return [p.sample for p in self.points]

    @property
    def growths(self) -> list[int]:
        return [p.growth for p in self.points]

    @property
    def crossed(self) -> list[tuple[str, ...]]:
        return [p.crossed for p in self.points]

    def add(self, sample: Sample) -> tuple[str, ...]:
        """Record ``sample``; return the names of the thresholds it crosses."""
        close_wait = sample.total.close_wait
        over = self.thresholds.over_s
        self.window.append((sample.t, close_wait))
        while over is not None and self.window[0][0] < sample.t - over:
            self.window.popleft()
        if over is None:  # the whole watch: only the lowest count matters
            self.window = deque([min(self.window, key=lambda tc: tc[1])])
        growth = close_wait - min(count for _, count in self.window)
        limits = self.thresholds
        crossed = tuple(
            name
            for name, value, limit in (
                ("max_close_wait", close_wait, limits.max_close_wait),
                ("max_growth", growth, limits.max_growth),
            )
            if limit is not None and value > limit
        )
        self.points.append(Point(sample, growth, crossed))
        for ep, counts in sample.endpoints.items():
            self.peaks[ep] = self.peaks.get(ep, Counts()).top(counts)
        self.total_peak = self.total_peak.top(sample.total)
        self.fds_peak = max(self.fds_peak, sample.fds)
        self.growth_peak = max(self.growth_peak, growth)
        for name in crossed:
            self.first_crossed.setdefault(name, len(self.points) - 1)
        return crossed

    def endpoints(self) -> list[str]:
        """Every endpoint seen in any sample, sorted."""
        return sorted(self.peaks)

    def column(self, endpoint: str, state: str) -> list[int]:
        """One state's count toward ``endpoint`` at every sample (0 where none)."""
        return [getattr(p.sample.endpoints.get(endpoint, Counts()), state) for p in self.points]

    def record(self, pid: int, index: int) -> dict[str, Any]:
        """The JSON Lines object of sample ``index`` (fields: docs/watch.md)."""
        point = self.points[index]
        return {
            "pid": pid,
            "t": round(point.sample.t, 3),
            "time": point.sample.time,
            "fds": point.sample.fds,
            **point.sample.total.to_dict(),
            "close_wait_growth": point.growth,
            "crossed": list(point.crossed),
            "endpoints": {ep: c.to_dict() for ep, c in point.sample.endpoints.items()},
        }


@dataclass(frozen=True)
class WatchSummary:
    """How a watch went: the series, how it ended, and so the exit code."""

    pid: int
    started: str  # ISO UTC of the first sample
    interval_s: float
    series: Series
    ended: EndReason
    detail: str = ""  # e.g. "SIGINT"

    @property
    def crossed(self) -> list[str]:
        return sorted(self.series.first_crossed)

    @property
    def exit_code(self) -> int:
        if self.crossed:
            return EXIT_CODES["crossed"]
        return EXIT_CODES["exited" if self.ended == "exited" else "ok"]


def watch(
    sampler: Callable[[float], Sample],
    *,
    interval_s: float,
    duration_s: float | None,
    series: Series,
    on_sample: Callable[[Series], None],
    clock: Callable[[], float],
    wait: Callable[[float], object],
) -> tuple[EndReason, str]:
    """Sample until the end; return (how it ended, detail). ``sampler(t)`` takes a sample
    ``t`` seconds into the watch (raising :class:`ProcessGone` when the process has ended);
    ``on_sample`` sees the series after each; ``wait(seconds)`` sleeps, interruptibly."""
    t0 = clock()
    ticks = 0
    try:
        while True:
            series.add(sampler(clock() - t0))
            on_sample(series)
            elapsed = clock() - t0
            if duration_s is not None and elapsed >= duration_s:
                return "duration", ""
            ticks = max(ticks + 1, math.floor(elapsed / interval_s) + 1)  # skip missed ticks
            due = ticks * interval_s if duration_s is None else min(ticks * interval_s, duration_s)
            wait(max(0.0, due - (clock() - t0)))
    except ProcessGone as exc:
        return "exited", str(exc)
    except Interrupted as exc:
        return "interrupted", signal.Signals(exc.signum).name
