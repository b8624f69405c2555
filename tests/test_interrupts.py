"""harness.interrupts: the first SIGINT/SIGTERM raises, later ones are ignored until the end.

Signals are sent to this very process (its main thread), with the handlers installed by the
code under test, so the outcome does not depend on the disposition pytest inherited.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest
from _wait import blocked_in, until

from harness.interrupts import SLICE_S, Caught, Interrupted, handling, ignoring, in_slices
from harness.processes import Child, spawn


def _deliver(signum: int) -> None:
    """Send ``signum`` to this process: delivered before kill() returns, its Python handler
    runs at the next bytecode, still inside this function."""
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_first_signal_raises_and_later_ones_are_ignored(signum: int, code: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with handling() as caught:
        with pytest.raises(Interrupted) as raised:
            _deliver(signum)
        assert isinstance(raised.value, KeyboardInterrupt)
        assert (raised.value.signum, raised.value.exit_code, str(raised.value)) == (
            signum,
            code,
            signal.Signals(signum).name,
        )
        _deliver(signal.SIGINT)  # cleanup goes on: both are ignored now
        _deliver(signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert (caught.signum, caught.exit_code) == (signum, code)
    assert {s: signal.getsignal(s) for s in before} == before


def test_ignoring_restores_the_handlers_it_replaced() -> None:
    with handling() as caught:
        with ignoring():
            _deliver(signal.SIGTERM)
        with pytest.raises(Interrupted):
            _deliver(signal.SIGTERM)
    assert caught.signum == signal.SIGTERM


def test_an_interruption_without_a_signal_counts_as_ctrl_c() -> None:
    assert Caught().exit_code == 130


def test_outside_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def body() -> None:
        with handling(), ignoring():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


def test_in_slices_returns_when_the_wait_does_or_the_timeout_passes() -> None:
    calls: list[float] = []

    def never(seconds: float) -> bool:
        calls.append(seconds)
        time.sleep(seconds)
        return False

    assert in_slices(never, 0) is False
    assert calls == [0.0]  # a zero timeout still looks once
    calls.clear()
    started = time.monotonic()
    assert in_slices(never, 0.25) is False
    assert time.monotonic() - started >= 0.25  # returns only once the timeout has passed
    assert calls and all(0.0 <= c <= SLICE_S for c in calls)  # never one long wait
    event = threading.Event()
    event.set()
    assert in_slices(event.wait) is True


def test_a_signal_handed_to_another_thread_interrupts_a_waiting_child() -> None:
    """The kernel may deliver a process-directed SIGINT to any thread; its Python handler
    runs only in the main thread, which must not stay blocked in waitpid meanwhile."""

    main = threading.current_thread()

    def send() -> None:
        until(lambda: blocked_in(main, Child.wait), what="the main thread in child.wait()")
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with spawn(sleeper, cwd=".", env=os.environ) as child:
        sender = threading.Thread(target=send)
        with handling() as caught, pytest.raises(Interrupted):
            sender.start()
            child.wait()
        sender.join()
        assert child.wait(0) is None  # the wait was interrupted; the child still runs
    assert caught.signum == signal.SIGINT
