"""Waiting in tests for a condition, never for a fixed time.

Tests order events by what they can observe (a file written, a count reached, a process gone,
a thread blocked in a call), so they pass on a loaded machine as on an idle one. Every wait
is bounded: a condition that never comes fails the test with what was awaited, instead of
hanging the suite.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import FunctionType
from typing import TypeVar

import psutil

__all__ = ["DEADLINE_S", "blocked_in", "gone", "until"]

DEADLINE_S = 30.0  # generous: a busy CI machine may be slow, never this slow
_T = TypeVar("_T")


def until(
    predicate: Callable[[], _T],
    *,
    what: str = "the condition",
    timeout_s: float = DEADLINE_S,
    interval_s: float = 0.02,
) -> _T:
    """Call ``predicate`` every ``interval_s`` until it returns a true value, and return that
    value; AssertionError naming ``what`` if ``timeout_s`` passes first."""
    end = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < end, f"{what} not reached within {timeout_s:g} s"
        time.sleep(interval_s)
    return value


def gone(pid: int) -> bool:
    """The process has ended: no such process, or a zombie awaiting its reaper."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def blocked_in(thread: threading.Thread, function: FunctionType) -> bool:
    """``thread`` is now inside a call of ``function`` (anywhere on its stack): for a test
    that must act only once another thread waits in that call."""
    assert thread.ident is not None, "the thread has not started"
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code is function.__code__:
            return True
        frame = frame.f_back
    return False
