"""SIGINT and SIGTERM as one exception, then quiet cleanup: the harness's one signal helper.

A command that must clean up (kill its workers, write the reports of finished cells, remove
a clone) runs inside :func:`handling`. The first SIGINT or SIGTERM raises
:class:`Interrupted` in the main thread; it is a :class:`KeyboardInterrupt`, so every
cleanup path written for Ctrl-C runs for SIGTERM too. From that moment both signals are
ignored until the block ends: a second Ctrl-C (or a SIGTERM from a supervisor) cannot cut
the cleanup short, which is what left workers behind and reports unwritten. The previous
handlers are restored when the block ends.

Handlers are installed whatever the inherited disposition (a background job starts with
SIGINT ignored): a signal someone sends on purpose is honoured. Signals reach only the main
thread, so outside it both helpers do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

__all__ = ["SIGNALS", "Caught", "Interrupted", "handling", "ignoring"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

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
