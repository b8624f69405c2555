"""harness.interrupts: the first SIGINT/SIGTERM raises, later ones are ignored until the end.

Signals are sent to this very process (its main thread), with the handlers installed by the
code under test, so the outcome does not depend on the disposition pytest inherited.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from harness.interrupts import Caught, Interrupted, handling, ignoring


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
