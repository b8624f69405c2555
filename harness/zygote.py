"""Pre-started workers: a zygote that has imported the SDK stack forks one worker per run.

Theory of operation
-------------------
A fresh worker spends most of a short run starting Python and importing openai and its HTTP
stack (0.6 s on a quiet machine, seconds on a busy one). :class:`Zygote` starts one process,
``python -m harness.zygote_process SOCKET``, the way the runner starts a worker (same
interpreter, folder and environment, through :func:`harness.processes.spawn`, so it cannot
outlive the harness). It imports the stack, builds and closes one throwaway client, warms
the SDK for the chat API (:mod:`harness.warmup`: the response models openai builds on first
parse, in memory, no socket), collects its garbage, and from then on only forks: one child
per run, asked for over a Unix socket (:mod:`harness.zygote_process`). Before the first run
of a Responses scenario it warms that API too.

The zygote runs in a folder of its own (its temporary folder, which holds nothing to import)
and serves runs in any folder: a forked child changes into the run's folder and puts it
first on ``sys.path``, as ``python -m`` started there would. What the zygote imported must be
what a fresh interpreter in that folder would import, so :meth:`Zygote.serves` refuses a
folder that holds a file or folder under the name of a module the zygote loaded from
elsewhere (``yaml.py``, ``openai/``): such a run starts a fresh interpreter.

A forked child is a clean process for the factory: the zygote never ran a session, so no
module-level state, GC setting or socket of one run reaches another; the child starts its
own session (process group), gets stdin and stdout on /dev/null and stderr on the run's
file, closes every descriptor of the zygote, and then runs exactly what ``python -m
harness.worker JOB`` runs, :func:`harness.worker.main` behind :func:`harness.processes.guard`,
with its own lifeline (a pipe whose write end the zygote holds) and leaves the same way
(:func:`harness.processes.leave`: non-daemon threads, atexit handlers, no module teardown).
Factory code is never imported in the zygote, so each run imports it fresh. The zygote
freezes what it imported (``gc.freeze()``), so a worker's collections scan only its run.

The zygote is the child's parent and reaps it only in its own loop, after the runner has
heard the exit: a kill (watchdog, cancel) is a message that the zygote carries out with
:func:`harness.processes.kill_tree` on a pid that cannot have been reused. If the harness
dies, the zygote's lifeline ends it and its supervisor kills every worker; if the zygote
dies, each worker's lifeline ends that worker, and runs waiting on it raise WorkerError.

A zygote's owner can share it with a child process (:meth:`Zygote.share`: a connection the
child inherits, named in :data:`~harness.environment.ZYGOTE_FD_ENV`): the child's
:func:`workers_for` attaches to it (:meth:`Zygote.attached`) and forks its runs there when
the zygote was started as the child would start them (:class:`~harness.messages.Ready`
carries a digest of its interpreter and environment). The child's hang-up, however it dies,
kills the runs it forked; the bisect driver shares its zygote with its oracle calls this way.

:func:`usable` says where a zygote can stand in for a fresh interpreter (Linux with
``pidfd_open``); the runner falls back to a fresh interpreter for a run whose interpreter or
environment differs from the zygote's, or whose folder shadows a module it preloaded.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from harness.environment import ZYGOTE_FD_ENV, worker_env
from harness.errors import WorkerError
from harness.interrupts import in_slices
from harness.messages import (
    MESSAGE_MAX,
    AttachRequest,
    Exited,
    ForkRequest,
    KillRequest,
    Ready,
    Started,
    ZygoteReport,
    ZygoteRequest,
    encode,
    parse_report,
    start_digest,
)
from harness.processes import Child, ClosedOnExit, spawn

__all__ = ["Forked", "InFolder", "Zygote", "ZygotePool", "usable", "workers_for"]

START_S: Final = 60.0  # the zygote's imports: under a second idle, far more on a busy box
KILL_S: Final = 30.0  # a kill message until the exit report (SIGKILL itself is immediate)
POLL_S: Final = 0.1
SOCKET_PATH_MAX: Final = 100  # sun_path holds 108 bytes; a deep TMPDIR (nox's) can exceed it


def usable() -> bool:
    """True where a zygote can stand in for a fresh interpreter (fork and pidfds)."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open")


@contextlib.contextmanager
def workers_for(root: Path, *, fresh: bool = False) -> Iterator[Zygote | None]:
    """A zygote for runs in ``root`` on this interpreter and environment, or None (every
    run starts a fresh interpreter) when ``fresh`` is set or :func:`usable` is False.

    A process handed a connection to a running zygote (:data:`ZYGOTE_FD_ENV`, set by whoever
    started it: the bisect driver for its oracle calls) uses that one, the first time it
    asks, whatever ``fresh`` says: it costs nothing to start."""
    shared = _inherited()
    if shared is not None:
        with Zygote.attached(shared, root=root) as zygote:
            yield zygote
        return
    if fresh or not usable():
        yield None
        return
    with Zygote(python=sys.executable, root=root, env=worker_env(os.environ)) as zygote:
        yield zygote


def _inherited() -> socket.socket | None:
    """The zygote connection this process was handed (:data:`ZYGOTE_FD_ENV`, taken out of the
    environment so no child inherits it), or None when there is none or it is not one."""
    raw = os.environ.pop(ZYGOTE_FD_ENV, None)
    if raw is None or not raw.isdigit() or not usable():
        return None
    try:
        conn = socket.socket(fileno=int(raw))
    except OSError:  # not open, or not a socket
        return None
    if (conn.family, conn.type) != (socket.AF_UNIX, socket.SOCK_SEQPACKET):
        conn.detach()  # someone else's descriptor: leave it open
        return None
    conn.set_inheritable(False)
    return conn


class ZygotePool:
    """A zygote for a sequence of single runs (the pytest plugin's checks): the first run
    starts a fresh interpreter (one run alone costs less fresh), the second starts the zygote
    that serves every later run in any folder it can (:meth:`Zygote.serves`). :meth:`close`
    ends it."""

    def __init__(self) -> None:
        self._asked = 0
        self._zygote: Zygote | None = None
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()

    def get(self, root: Path) -> Zygote | None:
        """The zygote to offer a run in ``root``, or None: run it in a fresh interpreter."""
        with self._lock:
            self._asked += 1
            if self._asked == 2:
                self._zygote = self._stack.enter_context(workers_for(root))
            return self._zygote

    def close(self) -> None:
        """End the zygote and the workers it forked; idempotent."""
        with self._lock:
            self._stack.close()
            self._zygote = None


# --- parent side ---------------------------------------------------------------------------


@dataclass
class _Pending:
    """One forked run as the parent sees it; the reader thread fills it in."""

    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    pid: int = 0
    exit: int | None = None
    error: str = ""


class Zygote(ClosedOnExit):
    """A pre-started worker factory for one interpreter and environment; its runs are in
    ``root`` unless :meth:`fork` names another folder.

    Use it as a context manager: leaving the ``with`` ends the zygote and every worker it
    forked. Thread-safe: runs on several threads fork through one zygote.
    """

    def __init__(self, *, python: str, root: Path, env: Mapping[str, str]) -> None:
        self.python, self.root, self.env = python, root.resolve(), dict(env)
        self._tmp: Path | None = None  # the control socket and the zygote's stderr
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._next = 0  # ids handed out so far: also how many workers were asked for
        self._ready = threading.Event()
        self._dead = ""  # why the zygote is gone, once it is
        self._child: Child | None = None
        self._conn: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._origins: dict[str, list[str]] = {}  # what it preloaded, from where (Ready)
        self._digest = ""  # how it was started (Ready)
        self._attached = False  # another process started it (attached)

    @classmethod
    def attached(cls, conn: socket.socket, *, root: Path) -> Zygote:
        """Serve runs (in ``root`` unless a fork names another folder) from a zygote another
        process started, over ``conn`` (:meth:`share`); its interpreter and environment are
        told by its Ready. Leaving the ``with`` ends this process's runs, not the zygote."""
        zygote = cls(python="", root=root, env={})
        zygote._attached, zygote._conn = True, conn
        return zygote

    @property
    def forks(self) -> int:
        """How many workers were asked for so far."""
        return self._next

    def serves(self, *, python: str, root: Path, env: Mapping[str, str]) -> bool:
        """True when a run with these settings would start the same way from this zygote:
        the same interpreter and environment, and a folder that shadows nothing it preloaded
        (waits until the zygote is ready, which a fork does anyway; a zygote that died or
        never got ready serves, so that the fork says why it failed, unless another process
        started it: then the run starts a fresh interpreter)."""
        if self._conn is None:
            return False  # never started
        if not self._attached and (python, dict(env)) != (self.python, self.env):
            return False  # another interpreter or environment
        in_slices(self._ready.wait, START_S)
        if self._attached and (self._dead or self._digest != start_digest(python, env)):
            return False
        return not self._shadowed(root)

    def _shadowed(self, root: Path) -> bool:
        """Whether ``root`` holds a module file or folder under the name of a module the
        zygote loaded from somewhere else: a fresh interpreter in ``root`` would import it."""
        try:
            entries = list(os.scandir(root))
        except OSError:
            return True  # a fresh interpreter will say what is wrong with the folder
        for entry in entries:
            name = _module_name(entry.name, is_dir=entry.is_dir())
            where = self._origins.get(name) if name else None
            if where is not None and os.path.realpath(entry.path) not in where:
                return True
        return False

    def start(self) -> Zygote:
        """Start the zygote process (or, :meth:`attached`, listen to the one another process
        started) and return at once; :meth:`fork` waits until it is ready."""
        if not self._attached:
            self._spawn()
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()
        return self

    def _spawn(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="harness-zygote-"))
        if len(str(self._tmp / "control")) > SOCKET_PATH_MAX:
            self._tmp.rmdir()
            self._tmp = Path(tempfile.mkdtemp(prefix="harness-zygote-", dir="/tmp"))
        try:
            self._conn = self._connect(str(self._tmp / "control"))
        except BaseException:
            self.close()
            raise

    def fork(
        self, job: Path, stderr: Path, pass_fds: Sequence[int] = (), *, root: Path | None = None
    ) -> Forked:
        """Fork ``python -m harness.worker JOB`` for ``job`` in folder ``root`` (default: the
        zygote's), its stderr to ``stderr``; each of ``pass_fds`` is open in the worker under
        the same number (as Popen's). Ask :meth:`serves` first for another folder."""
        folder = str((root or self.root).resolve())
        if not in_slices(self._ready.wait, START_S) and not self._dead:
            raise WorkerError(f"the zygote was not ready after {START_S:.0f} s")
        with self._lock:
            self._next += 1
            ident, pending = self._next, _Pending()
            self._pending[ident] = pending
        self._send(ForkRequest(ident, str(job), str(stderr), folder, tuple(pass_fds)), pass_fds)
        in_slices(pending.started.wait)
        if pending.error:
            raise WorkerError(f"the zygote could not fork a worker: {pending.error}")
        return Forked(self, ident, pending)

    def at(self, root: Path) -> InFolder:
        """A :class:`harness.launch.Launcher` that forks runs in ``root``."""
        return InFolder(self, root)

    def share(self) -> socket.socket:
        """A new connection to this zygote, for a process it did not start: pass the
        returned socket's descriptor to that child, name it in :data:`ZYGOTE_FD_ENV`, close
        it here once the child is started. The child's :func:`workers_for` forks its runs
        from here (it checks it would start them the same way); when it hangs up, its runs
        are killed. Closing this zygote ends them too."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with ours:
            self._send(AttachRequest(), [ours.fileno()])
        return theirs

    def close(self) -> None:
        """End the zygote and every worker it forked; idempotent."""
        if self._conn is not None:
            # The zygote reads EOF, kills its workers and exits; ENOTCONN: it is gone already.
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)
        if self._child is not None:
            self._child.close()
        if self._reader is not None:
            self._reader.join()
        if self._conn is not None:
            self._conn.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp)
        self._conn, self._child, self._reader, self._tmp = None, None, None, None

    def __enter__(self) -> Zygote:
        return self.start()  # leaving the ``with`` closes it (ClosedOnExit)

    def _connect(self, path: str) -> socket.socket:
        """Spawn the zygote and accept its connection to ``path``."""
        assert self._tmp is not None
        # SEQPACKET: one message per request, and descriptors travel with their request.
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
            listener.bind(path)
            listener.listen(1)
            listener.settimeout(POLL_S)
            with open(self._tmp / "stderr.txt", "wb") as stderr:
                self._child = spawn(
                    [self.python, "-m", "harness.zygote_process", path],
                    cwd=self._tmp,  # nothing to import here: it serves any folder
                    env=self.env,
                    stderr=stderr,
                )
            deadline = time.monotonic() + START_S
            while time.monotonic() < deadline:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    code = self._child.wait(0)
                    if code is not None:
                        raise WorkerError(
                            f"the zygote exited with {code}: {self._stderr()}"
                        ) from None
                    continue
                conn.settimeout(None)
                return conn
        raise WorkerError(f"the zygote did not connect within {START_S:.0f} s")

    def _send(self, message: ZygoteRequest, fds: Sequence[int] = ()) -> None:
        assert self._conn is not None
        data = encode(message)
        with self._lock:
            if self._dead:
                raise WorkerError(self._dead)
            socket.send_fds(self._conn, [data], list(fds))

    def _read(self) -> None:
        """The reader thread: hands each message to the run it is about, until EOF."""
        assert self._conn is not None
        try:
            while message := self._conn.recv(MESSAGE_MAX):
                self._take(parse_report(message))
        finally:
            with self._lock:
                self._dead = f"the zygote ended: {self._stderr() or 'no message'}"
                pending = list(self._pending.values())
            self._ready.set()
            for one in pending:
                one.error = one.error or self._dead
                one.started.set()
                one.ended.set()

    def _take(self, message: ZygoteReport) -> None:
        if isinstance(message, Ready):
            self._origins = json.loads(Path(message.origins).read_text(encoding="utf-8"))
            self._digest = message.digest
            self._ready.set()
            return
        with self._lock:
            pending = self._pending[message.id]
            if isinstance(message, Exited):
                del self._pending[message.id]
        if isinstance(message, Started):
            pending.pid = message.pid
            pending.started.set()
        elif isinstance(message, Exited):
            pending.exit = message.exit
            pending.ended.set()
        else:
            pending.error = message.error
            pending.started.set()

    def _stderr(self) -> str:
        """The zygote's last stderr line: why it failed, when it says (its owner's to read)."""
        if self._tmp is None:
            return ""
        try:
            text = (self._tmp / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""  # closed already
        return next((line for line in reversed(text.splitlines()) if line.strip()), "")


def _module_name(filename: str, *, is_dir: bool) -> str | None:
    """The module a folder entry would be imported as from ``sys.path``, or None."""
    if is_dir:
        return filename
    suffix = next((x for x in importlib.machinery.all_suffixes() if filename.endswith(x)), None)
    return filename[: -len(suffix)] if suffix else None


@dataclass(frozen=True)
class InFolder:
    """A :class:`harness.launch.Launcher`: ``zygote`` forks each run in ``root``."""

    zygote: Zygote
    root: Path

    def launch(self, job: Path, stderr: Path, pass_fds: Sequence[int] = ()) -> Forked:
        return self.zygote.fork(job, stderr, pass_fds, root=self.root)


class Forked(ClosedOnExit):
    """A worker forked by a :class:`Zygote`: a :class:`harness.processes.Handle`, as a
    fresh interpreter's :class:`harness.processes.Child` is."""

    def __init__(self, zygote: Zygote, ident: int, pending: _Pending) -> None:
        self._zygote, self._id, self._pending = zygote, ident, pending

    @property
    def pid(self) -> int:
        return self._pending.pid

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running after
        ``timeout`` seconds. Raises WorkerError when the zygote died under the worker."""
        if not in_slices(self._pending.ended.wait, timeout):
            return None
        if self._pending.exit is None:
            raise WorkerError(self._pending.error)
        return self._pending.exit

    def kill(self) -> None:
        """Kill the worker and every descendant, and wait until the zygote reaped it."""
        if self._pending.ended.is_set():
            return
        self._zygote._send(KillRequest(self._id))
        if not in_slices(self._pending.ended.wait, KILL_S):
            raise WorkerError(f"worker {self.pid} was not reaped {KILL_S:.0f} s after its kill")

    def close(self) -> None:
        self.kill()
