"""The threaded replay of a ``session.timeline`` (:mod:`harness.gateway`'s sessions).

Every session is a thread started from one common moment ``t0``; none waits for another (a
barrier would stretch the gaps that decide keep-alive reaping). A session reports each turn
it is through; :class:`~harness.conversation.TimelineTurns` says which turns that completes,
and one more thread takes those turns' samples in order while the sessions go on, so that no
gap includes the wait for the server to settle. The first failure of a session or a sample
is raised once every thread has ended.

Within a session (:func:`replay_session`), each call's request client is built while the
previous call's gap runs, and the request leaves when the gap ends: the server sees the
timeline's gap, not the gap plus the client's construction (tens of ms on a busy machine).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from harness.conversation import Round, TimelineTurns, rounds, start_ms
from harness.schema import SessionSpec

__all__ = ["replay_session", "run_timeline"]

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


def replay_session(
    spec: SessionSpec,
    index: int,
    t0: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    call: Callable[[Round, Callable[[], None]], None],
    after_turn: Callable[[int], None],
) -> None:
    """Session ``index`` of the timeline: ``call(step, ready)`` makes each call and runs
    ``ready()`` once its request client is built; ``ready`` returns when the previous gap (or
    the session's start) is over, after reporting the previous turn done."""
    due, gap_of = t0 + start_ms(spec, index) / 1000, 0  # when, and whose gap (0: the start)

    def ready() -> None:
        sleep(max(0.0, due - clock()))
        if gap_of:
            after_turn(gap_of)

    for step in rounds(spec, index):
        call(step, ready)
        due, gap_of = clock() + step.idle_ms / 1000, step.turn
    ready()
