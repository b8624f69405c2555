"""The threaded replay of a ``session.timeline`` (:mod:`harness.gateway`'s sessions).

Every session is a thread started from one common moment ``t0``; none waits for another (a
barrier would stretch the gaps that decide keep-alive reaping). A session reports each turn
it is through; :class:`~harness.conversation.TimelineTurns` says which turns that completes,
and one more thread takes those turns' samples in order while the sessions go on, so that no
gap includes the wait for the server to settle. The first failure of a session or a sample
is raised once every thread has ended.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from harness.conversation import TimelineTurns
from harness.scenario import SessionSpec

__all__ = ["run_timeline"]

# session(index, after_turn, t0): run session ``index`` from ``t0``, calling after_turn(turn)
SessionRunner = Callable[[int, Callable[[int], None], float], None]


def run_timeline(
    spec: SessionSpec,
    clock: Callable[[], float],
    session: SessionRunner,
    turn_done: Callable[[int], None],
) -> None:
    """Run every session of ``spec.timeline`` in its thread; ``turn_done(N)`` once per turn,
    in order, in a thread of its own."""
    turns, lock = TimelineTurns(spec), threading.Lock()
    due: queue.SimpleQueue[int] = queue.SimpleQueue()
    failures: list[BaseException] = []

    def after_turn(index: int, turn: int) -> None:
        with lock:
            for done in turns.finished(index, turn, spec):
                due.put(done)

    def target(index: int, t0: float) -> None:
        try:
            session(index, lambda turn: after_turn(index, turn), t0)
        except BaseException as exc:  # raised below, once every thread has ended
            failures.append(exc)

    def sampler() -> None:
        while turn := due.get():  # 0: the sessions are over
            try:
                turn_done(turn)
            except BaseException as exc:
                failures.append(exc)

    t0 = clock()
    threads = [
        threading.Thread(target=target, args=(i, t0), name=f"session-{i}")
        for i in range(spec.concurrency)
    ]
    samples = threading.Thread(target=sampler, name="timeline-samples")
    for thread in [samples, *threads]:
        thread.start()
    for thread in threads:
        thread.join()
    due.put(0)
    samples.join()
    if failures:
        raise failures[0]
