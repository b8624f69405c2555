"""``harness watch --pid PID``: a running process's TCP sockets per endpoint, over time.

On a terminal a live table; off one, or with ``--json``, one JSON object per sample on stdout
(the closing lines then go to stderr). ``--out DIR`` writes summary.md, report.html and
samples.jsonl at the end. Exit codes (docs/watch.md): 0 within the thresholds, 1 a threshold
crossed, 2 bad usage or a process that cannot be watched, 3 the process ended first.
SIGINT/SIGTERM end the watch like ``--duration`` does: the report is written and the exit
code follows the thresholds.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.live import Live
from rich.text import Text

from harness.commands.registry import command
from harness.errors import UsageError
from harness.interrupts import handling, ignoring, in_slices
from harness.progress import choose_mode
from harness.report.text import terminal_width
from harness.report.watch import conclusion, json_line, live_view, write_watch_reports
from harness.sockets import Endpoint, ProcessSockets, parse_endpoint
from harness.watch import Series, Thresholds, WatchSummary, parse_duration, watch

__all__ = ["COMMAND"]

_T = TypeVar("_T")
_NEVER = threading.Event()  # never set: waiting on it is an interruptible sleep


def _argtype(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse type from a parser raising ValueError with its one-line message."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = parse.__name__  # argparse names the type in its messages
    return convert


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a process id (a whole number >= 1)")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=_argtype(_pid), required=True, help="the process to watch")
    parser.add_argument(
        "--interval", type=_argtype(parse_duration), default=1.0, metavar="DURATION",
        help="time between samples: 500ms, 1s, 1m (default 1s)",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=_argtype(parse_duration), metavar="DURATION",
        help="stop after this long (30s, 10m, 1h); default: until Ctrl-C or the process ends",
    )  # fmt: skip
    parser.add_argument(
        "--endpoint", type=_argtype(parse_endpoint), action="append", default=[],
        metavar="HOST:PORT",
        help="watch only sockets toward this endpoint (IP:PORT, [IPv6]:PORT, *:PORT); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--max-close-wait", type=_argtype(_count), metavar="N",
        help="exit 1 if CLOSE_WAIT sockets (all endpoints watched) ever exceed N",
    )  # fmt: skip
    parser.add_argument(
        "--max-growth", type=_argtype(_count), metavar="N",
        help="exit 1 if CLOSE_WAIT ever grows by more than N within --over",
    )  # fmt: skip
    parser.add_argument(
        "--over", type=_argtype(parse_duration), metavar="DURATION",
        help="the sliding window of --max-growth (e.g. 10m); default: since the start",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true", help="JSON Lines on stdout even on a terminal"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help="write summary.md, report.html and samples.jsonl here at the end",
    )  # fmt: skip


def main(ns: argparse.Namespace) -> int:
    if ns.over is not None and ns.max_growth is None:
        raise UsageError("--over is the window of --max-growth; give --max-growth N too")
    if ns.out is not None and ns.out.exists() and not ns.out.is_dir():
        raise UsageError(f"--out {str(ns.out)!r} is a file; pick a folder")
    endpoints: list[Endpoint] = ns.endpoint
    sockets = ProcessSockets(ns.pid, endpoints)  # UsageError: no such process, access denied
    thresholds = Thresholds(ns.max_close_wait, ns.max_growth, ns.over)
    live = choose_mode(sys.stdout, quiet=ns.json, env=os.environ) == "live"
    show = _LiveTable(ns.pid, ns.interval) if live else _JsonLines(ns.pid, ns.interval)
    series = Series(thresholds)
    with handling(), show:  # the first SIGINT/SIGTERM ends the loop; both ignored after it
        ended, detail = watch(
            sockets.sample,
            interval_s=ns.interval,
            duration_s=ns.duration,
            series=series,
            on_sample=show.update,
            clock=time.monotonic,
            wait=lambda s: in_slices(_NEVER.wait, s),
        )
    started = series.points[0].sample.time if series.points else ""
    summary = WatchSummary(ns.pid, started, ns.interval, series, ended, detail)
    closing = sys.stdout if live else sys.stderr  # stdout stays JSON Lines only
    with ignoring():  # the ending and the report are written in full, whatever comes now
        for line in conclusion(summary):
            print(line, file=closing, flush=True)
        if ns.out is not None and series.points:
            print(f"reports: {write_watch_reports(summary, ns.out)}", file=closing, flush=True)
        elif ns.out is not None:
            print("reports: none (no sample was taken)", file=closing, flush=True)
    return summary.exit_code


class _JsonLines:
    """Off a terminal or with --json: one JSON object per sample, flushed at once."""

    def __init__(self, pid: int, interval_s: float) -> None:
        self.pid, self.interval_s = pid, interval_s

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, series: Series) -> None:
        print(json_line(self.pid, series, len(series.points) - 1), flush=True)


class _LiveTable(_JsonLines):
    """On a terminal: the table redrawn in place after every sample (rich), left on screen."""

    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(pid, interval_s)
        self.console = Console(file=sys.stdout, force_terminal=True, highlight=False)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)

    def __enter__(self) -> None:
        self.live.start()

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def update(self, series: Series) -> None:
        width = terminal_width(sys.stdout, wide=False)
        text = live_view(self.pid, series, self.interval_s, width)
        self.live.update(Text(text, no_wrap=True, overflow="ellipsis"), refresh=True)


COMMAND = command("watch", add_arguments, main)
