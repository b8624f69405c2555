"""Process control: children that cannot outlive their parent nor leak a descendant.

Theory of operation
-------------------
A factory is user code: it may start helpers in their own session (``setsid``, a
double-forked daemon), which a process-group kill misses, and the harness itself may die by
SIGKILL, which runs no cleanup at all. Three mechanisms together close both holes:

1. **Spawn with a lifeline** (parent side, :func:`spawn`). The child starts in a new session
   (its own process group) and inherits the read end of a pipe whose write end only the
   parent holds (``HARNESS_LIFELINE_FD`` names it). The kernel closes the write end however
   the parent dies, SIGKILL included, so the child reads EOF: its parent is gone.
2. **Guard** (child side, :func:`guard`, first thing in ``harness.worker``). The child makes
   itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so every descendant that
   detaches re-parents to it instead of to init, then forks: the parent half stays a small
   supervisor, the child half returns and does the work. The supervisor waits for the work,
   then kills every descendant left (daemons included) and exits with the work's status. A
   thread watching the lifeline does the same cleanup at once when the harness dies. The work
   half gets ``PR_SET_PDEATHSIG`` = SIGKILL toward the supervisor; the supervisor's main thread
   is the one that forked and lives until the supervisor exits, so the signal fires exactly
   when the supervisor dies (PDEATHSIG follows the parent *thread*, not the process).
3. **Freeze, then kill** (parent side, :func:`kill_tree`). To end a child early (watchdog,
   cancel, Ctrl-C) the parent stops the child and each descendant it finds with SIGSTOP,
   re-scanning until a pass finds nothing new (a stopped process cannot fork), then sends
   SIGKILL to all of them. Descendants are found through their parent links, so it works
   however they detached, as long as the subreaper keeps them in the tree.

Without ``prctl`` (not Linux) steps 1 and 3 still hold; a descendant whose parent exits then
re-parents to init and escapes the tree. A supervisor SIGKILLed by a third party (not by
:func:`kill_tree`) loses its orphans the same way: its work half still dies by PDEATHSIG.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Final, NoReturn, Protocol, Self

import psutil

from harness.interrupts import in_slices

__all__ = [
    "LIFELINE_ENV",
    "Child",
    "ClosedOnExit",
    "Handle",
    "guard",
    "kill_descendants",
    "kill_tree",
    "leave",
    "spawn",
]

LIFELINE_ENV: Final = "HARNESS_LIFELINE_FD"
LIFELINE_EXIT: Final = 128 + signal.SIGKILL  # the supervisor's status when the parent died
FREEZE_ROUNDS: Final = 50  # scans of a tree that keeps forking before we kill what we have
REAP_ROUNDS: Final = 100
REAP_PAUSE_S: Final = 0.01
KILL_WAIT_S: Final = 5.0  # SIGKILL takes effect at once; this only bounds a stuck kernel

_PR_SET_PDEATHSIG: Final = 1
_PR_SET_CHILD_SUBREAPER: Final = 36

_File = int | IO[bytes] | None


# --- parent side -------------------------------------------------------------------------


class Handle(Protocol):
    """A running worker as the runner sees it, however it was started (:class:`Child` for a
    fresh interpreter, :class:`harness.zygote.Forked` for a zygote's fork).

    ``wait`` returns the exit code (negative: killed by that signal), or None if still
    running after ``timeout`` seconds; ``kill`` kills its whole tree and returns once it is
    reaped (idempotent); ``close`` kills what is left and releases the handle; leaving a
    ``with`` closes it, on every way out.
    """

    @property
    def pid(self) -> int: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ClosedOnExit:
    """The context-manager surface every :class:`Handle` (and the zygote) shares: leaving
    the ``with`` (an exception, KeyboardInterrupt) calls :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Child(ClosedOnExit):
    """A child started by :func:`spawn`. Use it as a context manager: every way out of the
    ``with`` (an exception, KeyboardInterrupt) kills the child's whole tree and reaps it."""

    def __init__(self, proc: subprocess.Popen[bytes], lifeline: int) -> None:
        self.proc = proc
        self._lifeline = lifeline  # the write end; closing it tells the child we are gone

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running after
        ``timeout`` seconds."""

        def exited(seconds: float) -> bool:
            try:
                self.proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return False
            return True

        # In slices, not one waitpid: a signal handed to another thread must still interrupt.
        return self.proc.returncode if in_slices(exited, timeout) else None

    def kill(self) -> None:
        """Kill the child and every descendant, then reap the child. Idempotent.

        The pid is only used while the child is not yet reaped (a zombie keeps its pid), so
        it can never hit a recycled pid.
        """
        if self.proc.returncode is None:
            kill_tree(self.proc.pid)
        self.wait()

    def close(self) -> None:
        """Kill what is left and drop the lifeline."""
        try:
            self.kill()
        finally:
            if self._lifeline >= 0:
                os.close(self._lifeline)
                self._lifeline = -1


def spawn(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    stdout: _File = subprocess.DEVNULL,
    stderr: _File = subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
) -> Child:
    """Start ``argv`` in a new session with a lifeline (see the module docstring).

    stdin is /dev/null; ``pass_fds`` are inherited besides the lifeline (the runner passes
    the settle channel, see :mod:`harness.settle`). A child that calls :func:`guard` dies
    with this process; any other child is still killed as a tree by :meth:`Child.kill`.
    """
    read_end, write_end = os.pipe()  # both close-on-exec: only the child gets read_end
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**env, LIFELINE_ENV: str(read_end)},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(read_end, *pass_fds),
            start_new_session=True,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return Child(proc, write_end)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant, however detached; a gone ``pid`` is a no-op.

    Freezes the tree first (see the module docstring) so nothing forks in between. Waits
    until the killed processes are dead; reaping is left to their parents (for a child of
    ours: its Popen, which so keeps the exit status).
    """
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    _kill_all(_freeze(root, include_root=True))


def kill_descendants() -> None:
    """SIGKILL every descendant of this process and reap those that are its children."""
    me = psutil.Process()
    for _ in range(REAP_ROUNDS):
        # No child left means no descendant either: a subreaper inherits every orphan below.
        if not _reap_children():
            return
        _kill_all(_freeze(me, include_root=False))
    raise RuntimeError(f"descendants of {me.pid} kept appearing after {REAP_ROUNDS} rounds")


def _freeze(root: psutil.Process, *, include_root: bool) -> list[psutil.Process]:
    frozen: dict[int, psutil.Process] = {}
    for _ in range(FREEZE_ROUNDS):
        try:
            found = root.children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        if include_root:
            found.append(root)
        new = [p for p in found if p.pid not in frozen]
        if not new:
            break
        for proc in new:
            frozen[proc.pid] = proc
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.suspend()
    return list(frozen.values())


def _kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL ``procs`` and wait until each is dead (gone or a zombie), at most
    :data:`KILL_WAIT_S`. Nobody is reaped here: a Popen keeps its child's exit status."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    deadline = time.monotonic() + KILL_WAIT_S
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(REAP_PAUSE_S)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap_children() -> bool:
    """Reap every exited child of this process; True while one is still running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


# --- child side --------------------------------------------------------------------------


def guard() -> None:
    """Make this process unable to outlive its parent or leak descendants; returns in the
    process that should do the work (see the module docstring). Call it before starting
    threads. Without :data:`LIFELINE_ENV` (not started by :func:`spawn`) it does nothing.
    """
    raw = os.environ.pop(LIFELINE_ENV, None)
    if raw is None:
        return
    lifeline = int(raw)
    if not stat.S_ISFIFO(os.fstat(lifeline).st_mode):
        raise ValueError(f"{LIFELINE_ENV}={raw}: not a pipe; only spawn() sets this variable")
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    sys.stdout.flush()
    sys.stderr.flush()
    supervisor = os.getpid()
    work = os.fork()
    if work == 0:
        os.close(lifeline)
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != supervisor:  # it died before PDEATHSIG was armed
            os._exit(LIFELINE_EXIT)
        return
    _supervise(work, lifeline)


def leave(code: int) -> NoReturn:
    """Exit with ``code`` as the interpreter would, minus its teardown of every module and
    object: wait for non-daemon threads, run the atexit handlers, flush stdio, ``_exit``.

    For a worker, whose measurements are all written by now: tearing down the openai/httpx
    stack costs about 0.1 s per run, a third of a short run's overhead. A factory's cleanup
    still runs where it may (atexit, its threads); whatever it leaves behind, the supervisor
    kills (:func:`guard`).
    """
    main = threading.main_thread()
    while others := [t for t in threading.enumerate() if t is not main and not t.daemon]:
        for thread in others:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing to flush
            stream.flush()
    os._exit(code)


def _supervise(work: int, lifeline: int) -> NoReturn:
    """The supervisor half: wait for the work, clean up, exit with the work's status."""
    ends = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    for sig in ends:
        signal.signal(sig, _end_on_signal)
    # The watcher starts with these signals blocked (a thread inherits its creator's mask),
    # so the kernel delivers them to this thread, whose waitpid they interrupt; delivered to
    # the watcher they would wait for the work to end (see harness.interrupts).
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, ends)
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    try:
        _, status = os.waitpid(work, 0)
    except ChildProcessError:  # the lifeline watcher reaped it first: it ends this process
        while True:
            time.sleep(60)
    kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # die the way the work died, so the parent sees the same signal
        if -code != signal.SIGKILL:  # the one signal whose handler cannot be set
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 128 - code)


def _watch_lifeline(lifeline: int) -> None:
    # EOF, or a read error (the pipe is unusable), means the parent can no longer be known
    # to be alive: end the run either way.
    with contextlib.suppress(OSError):
        while os.read(lifeline, 1):
            pass  # the parent never writes; any byte is ignored
    kill_descendants()
    os._exit(LIFELINE_EXIT)


def _end_on_signal(signum: int, frame: object) -> None:
    kill_descendants()
    os._exit(128 + signum)


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` on Linux; False where it does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}, {value}): {os.strerror(err)}")
    return True
