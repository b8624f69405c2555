"""What a long command shows while it runs: plain lines, a live display, or nothing.

Three modes, chosen once per invocation by :func:`choose_mode`:

- ``plain`` (off a TTY: CI logs, pipes): one line per finished item, exactly the lines the
  commands have always printed, so logs and scripts that read them keep working.
- ``live`` (on a TTY): the same lines scroll above a live region drawn by rich: items done of
  total, the items running now and for how long, elapsed and estimated time left, failures so
  far. The region is removed when the command ends, leaving the plain lines.
- ``quiet`` (``--quiet`` or ``--json``): nothing while it runs but the conclusion
  (:meth:`Progress.conclude`); the command prints its result.

A :class:`Progress` is fed from worker threads (a matrix runs cells on a thread pool), so
every method is thread-safe. With a :meth:`Progress.plan` the time left is estimated from
the planned durations of the items not finished yet (less what the running ones have done),
scaled by how long finished items (and running ones already past their plan) took against
their plan, and divided among the items that run at once: quick items finishing first do not
make the rest look quick, a loaded machine shows in the estimate before the first item ends,
and one long scenario left at the end is not mistaken for a quick one. With a
:meth:`Progress.budget` (items not known ahead) it is rich's estimate from the units done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Literal, TextIO

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

__all__ = ["Live", "Mode", "Progress", "Quiet", "choose_mode", "make_progress"]

Mode = Literal["plain", "live", "quiet"]


def choose_mode(out: TextIO, *, quiet: bool, env: Mapping[str, str]) -> Mode:
    """``quiet`` if asked, ``live`` on a terminal that can redraw, else ``plain``."""
    if quiet:
        return "quiet"
    if out.isatty() and env.get("TERM", "") not in ("", "dumb"):
        return "live"
    return "plain"


class Progress:
    """Plain mode, and the interface of every mode: ``started``, ``finished``, ``say``.

    Use as a context manager around the work. ``finished(key, line, failed=...)`` prints
    ``line`` (the plain-mode line for that item); ``say`` prints any other line.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Begin drawing (live mode only)."""

    def stop(self) -> None:
        """Stop drawing and leave the terminal as plain text (live mode only)."""

    def plan(self, weights: Iterable[tuple[str, float]]) -> None:
        """The items to come, each with its expected duration (any unit)."""

    def budget(self, units: int) -> None:
        """Instead of :meth:`plan`: at most ``units`` of work to come, items not known yet
        (a bisect's oracle runs); each finished item reports the units it used."""

    def started(self, key: str) -> None:
        """``key`` began running."""

    def finished(self, key: str, line: str, *, failed: bool, units: int = 1) -> None:
        """``key`` ended (``failed``: it counts among the failures so far); print ``line``."""
        self.say(line)

    def say(self, line: str) -> None:
        with self._lock:
            print(line, file=self.out, flush=True)

    def conclude(self, line: str) -> None:
        """The command's conclusion: printed in every mode, quiet too."""
        self.say(line)


class Quiet(Progress):
    """Prints nothing while the work runs."""

    def finished(self, key: str, line: str, *, failed: bool, units: int = 1) -> None:
        return None

    def say(self, line: str) -> None:
        return None

    def conclude(self, line: str) -> None:
        Progress.say(self, line)


class _Display(RichProgress):
    """A rich progress bar plus one line naming the items running now."""

    running: Callable[[], str] = staticmethod(lambda: "")

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        running = self.running()
        if running:
            yield Text(running, overflow="ellipsis", no_wrap=True)


class _LeftColumn(TimeRemainingColumn):
    """The time left from :meth:`Live.left` when it knows, else rich's estimate."""

    left: Callable[[], float | None] = staticmethod(lambda: None)

    def render(self, task: Task) -> Text:
        seconds = self.left()
        if seconds is None:
            return super().render(task)
        minutes, secs = divmod(int(seconds + 0.5), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{secs:02d}", style="progress.remaining")


class Live(Progress):
    """The plain lines, scrolling above a live region (see the module docstring)."""

    def __init__(
        self,
        out: TextIO,
        *,
        what: str = "cells",
        failed_word: str = "not as expected",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out)
        self.what, self.failed_word, self.clock = what, failed_word, clock
        self.console = Console(file=out, force_terminal=True, highlight=False)
        self.display = _Display(
            TextColumn("[bold]{task.fields[done]}/{task.fields[count]}[/] " + what),
            BarColumn(),
            TextColumn("{task.fields[failures]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            left := _LeftColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        )
        self.display.running = self._running_line
        left.left = self.left
        self.task: TaskID = self.display.add_task("", total=None, done=0, count=0, failures="")
        self.weights: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.done = self.failures = 0
        self.ended: set[str] = set()
        self.planned_done = self.took = 0.0  # finished items: planned sum, measured sum
        self.parallel = 1  # the most items seen running at once

    def start(self) -> None:
        self.display.start()

    def stop(self) -> None:
        self.display.stop()

    def plan(self, weights: Iterable[tuple[str, float]]) -> None:
        with self._lock:
            self.weights = dict(weights)
            total = sum(self.weights.values()) or None
            self.display.update(self.task, total=total, count=len(self.weights))

    def budget(self, units: int) -> None:
        with self._lock:
            self.display.update(self.task, total=units or None, count=units)

    def started(self, key: str) -> None:
        with self._lock:
            self.running[key] = self.clock()
            self.parallel = max(self.parallel, len(self.running))

    def finished(self, key: str, line: str, *, failed: bool, units: int = 1) -> None:
        with self._lock:
            since = self.running.pop(key, None)
            if since is not None and key in self.weights and key not in self.ended:
                self.planned_done += self.weights[key]
                self.took += self.clock() - since
            self.ended.add(key)
            self.done += units
            self.failures += failed
            shown = f"{self.failures} {self.failed_word}" if self.failures else ""
            advance = self.weights.get(key, float(units))
            self.display.update(self.task, advance=advance, done=self.done, failures=shown)
            self.console.print(Text(line))  # wrapped to the terminal's width

    def say(self, line: str) -> None:
        with self._lock:
            self.console.print(Text(line))  # wrapped to the terminal's width

    def left(self) -> float | None:
        """Seconds left by the plan (see the module docstring); None without a plan."""
        now, running = self.clock(), dict(self.running)  # no lock: rich calls this (below)
        if not self.weights:
            return None
        pace = self.took / self.planned_done if self.planned_done > 0 else 1.0
        # Running items already past their plan at that pace are evidence too: without them a
        # loaded machine shows the plan until the first item ends, and the estimate jumps then.
        over = [(w, now - running[k]) for k, w in self.weights.items() if k in running]
        over = [(w, took) for w, took in over if took > w * pace]
        if over:
            pace = (self.took + sum(t for _, t in over)) / (
                self.planned_done + sum(w for w, _ in over)
            )
        todo = [
            max(0.0, w * pace - (now - running[k] if k in running else 0.0))
            for k, w in self.weights.items()
            if k not in self.ended
        ]
        return max(sum(todo) / self.parallel, max(todo, default=0.0))

    def _running_line(self) -> str:
        # Called by rich while it holds its own lock: take a snapshot (one C-level copy, atomic
        # under the GIL) instead of our lock, so the two locks are never taken in both orders.
        now, running = self.clock(), dict(self.running)
        items = sorted(running.items(), key=lambda kv: kv[1])
        parts = [f"{key} ({now - since:.0f} s)" for key, since in items]
        return "running: " + ", ".join(parts) if parts else ""


def make_progress(
    mode: Mode, out: TextIO, *, what: str = "cells", failed_word: str = "not as expected"
) -> Progress:
    """The :class:`Progress` for ``mode``, writing to ``out``; ``what`` names the items
    (``cells``), ``failed_word`` the failures (``not as expected``)."""
    if mode == "live":
        return Live(out, what=what, failed_word=failed_word)
    if mode == "quiet":
        return Quiet(out)
    return Progress(out)
