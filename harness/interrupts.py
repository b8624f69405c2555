"""SIGINT and SIGTERM as one exception, then quiet cleanup: the harness's one signal helper.

A command that must clean up (kill its workers, write the reports of finished cells, remove
a clone) runs inside :func:`handling`. The first SIGINT or SIGTERM raises
:class:`Interrupted` in the main thread; it is a :class:`KeyboardInterrupt`, so every
cleanup path written for Ctrl-C runs for SIGTERM too. From that moment both signals are
ignored until the block ends: a second Ctrl-C (or a SIGTERM from a supervisor) cannot cut
the cleanup short, which is what left workers behind and reports unwritten. The previous
handlers are restored when the block ends.

Handlers are installed whatever the inherited disposition (a background job starts with
SIGINT ignored): a signal someone sends on purpose is honoured. Python runs handlers only in
the main thread, so outside it both helpers do nothing.

The kernel, though, may hand a process-directed signal to *any* thread (always, once the main
thread already has one pending: Ctrl-C Ctrl-C). The C handler then only sets a flag, and a
main thread blocked in one long lock wait or ``waitpid`` does not run the Python handler
until that wait ends: minutes, for a regress cell in a 60 s idle gap. So every wait the main
thread may do under :func:`handling` goes through :func:`in_slices`, which returns to the
interpreter every :data:`SLICE_S`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

__all__ = [
    "SIGNALS",
    "SLICE_S",
    "Caught",
    "Interrupted",
    "deferring",
    "handling",
    "ignoring",
    "in_slices",
]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SLICE_S: Final = 0.1  # the longest a waiting main thread leaves a signal unhandled

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which, ``exit_code`` is 128 + it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class Caught:
    """What :func:`handling` saw: the first signal, if any."""

    signum: int = 0

    @property
    def exit_code(self) -> int:
        """128 + the signal; 130 (Ctrl-C) when the interruption came another way."""
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def handling() -> Iterator[Caught]:
    """Raise :class:`Interrupted` on the first SIGINT/SIGTERM, ignore both after it."""
    caught = Caught()

    def handler(signum: int, frame: FrameType | None) -> None:
        if caught.signum:
            return  # a second signal queued before SIG_IGN took over
        caught.signum = signum
        _install(signal.SIG_IGN)
        raise Interrupted(signum)

    with _installed(handler):
        yield caught


@contextmanager
def ignoring() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for the block: cleanup that must run to its end."""
    with _installed(signal.SIG_IGN):
        yield


@contextmanager
def deferring() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block, then deliver the first one held to the handler
    the block replaced. For library code an exception must not cut in half: a thread pool
    interrupted while it starts a thread never records that thread, so it would outlive the
    pool's shutdown."""
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    with _installed(hold):
        yield
    if held:
        signal.raise_signal(held[0])


def in_slices(wait: Callable[[float], bool], timeout: float | None = None) -> bool:
    """Call ``wait(seconds)`` with at most :data:`SLICE_S` seconds at a time until it returns
    True (then True) or ``timeout`` seconds have passed (then False; None: never).

    ``wait`` is a bounded wait such as ``Event.wait``; between two calls the interpreter runs
    pending signal handlers, so :class:`Interrupted` is raised within a slice of the signal.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
        if wait(max(0.0, left)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


@contextmanager
def _installed(handler: _Handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in SIGNALS}
    _install(handler)
    try:
        yield
    finally:
        for s, old in saved.items():
            # None: a handler set outside Python; the default is the nearest we can restore.
            signal.signal(s, signal.SIG_DFL if old is None else old)


def _install(handler: _Handler) -> None:
    for s in SIGNALS:
        signal.signal(s, handler)
