"""The zygote process: ``python -m harness.zygote_process SOCKET`` (see :mod:`harness.zygote`).

It connects to the runner's SOCKET (SOCK_SEQPACKET: one message each, descriptors travel
with their request; the messages are :mod:`harness.messages`), imports what every worker
imports, says ``Ready``, and then serves: a ``ForkRequest`` starts a worker (``Started``,
or ``ForkFailed``), a ``KillRequest`` kills one's tree, and every exit is reported
(``Exited``). It reaps its children only in its own loop, after noticing the exit on a
pidfd, so a pid it kills is never a reused one. When the runner hangs up it kills what it
forked and exits. In a forked child :func:`main` returns from the loop and runs
:func:`harness.worker.main`, as ``python -m harness.worker JOB`` would.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import os
import selectors
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.messages import (
    MESSAGE_MAX,
    ORIGINS,
    Exited,
    ForkFailed,
    ForkRequest,
    KillRequest,
    Ready,
    Started,
    ZygoteReport,
    encode,
    parse_request,
)
from harness.processes import LIFELINE_ENV, guard, kill_tree, leave

__all__ = ["main"]

EXIT_SETUP: Final = 70  # a forked child failed before it became a worker (EX_SOFTWARE)
FDS_MAX: Final = 16  # descriptors one run passes to its worker (pass_fds)


@dataclass
class _Running:
    ident: int
    pid: int
    pidfd: int
    lifeline: int  # the write end; the worker's supervisor reads EOF when the zygote dies


class _Server:
    """The zygote's loop: fork on request, kill on request, report every exit."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.selector = selectors.DefaultSelector()
        self.selector.register(conn, selectors.EVENT_READ, None)
        self.running: dict[int, _Running] = {}  # by id

    def serve(self) -> list[str]:
        """Serve until the harness hangs up (then exit); returns only in a forked child,
        with the worker's argv."""
        while True:
            for key, _ in self.selector.select():
                if key.data is not None:
                    self._reap(key.data)
                    continue
                data, fds, _, _ = socket.recv_fds(self.conn, MESSAGE_MAX, FDS_MAX)
                if not data:
                    self._end()
                argv = self._handle(parse_request(data), fds)
                if argv is not None:
                    return argv

    def _handle(self, request: ForkRequest | KillRequest, fds: list[int]) -> list[str] | None:
        if isinstance(request, KillRequest):
            running = self.running.get(request.id)
            if running is not None:  # already reaped: its exit report is on its way
                kill_tree(running.pid)
            return None
        passed = dict(zip(request.fds, fds, strict=True))
        if threading.active_count() != 1:  # forking a threaded process is unsafe
            _close(fds)
            self._send(ForkFailed(request.id, f"{threading.active_count()} threads"))
            return None
        return self._fork(request, passed)

    def _fork(self, request: ForkRequest, passed: dict[int, int]) -> list[str] | None:
        ident = request.id
        lifeline_r, lifeline_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                self._become_worker(request.stderr, lifeline_r, lifeline_w, passed)
                _enter(request.root)
            except BaseException:  # not back into the zygote's loop: this is the child
                traceback.print_exc()
                os._exit(EXIT_SETUP)
            from harness import worker

            return [worker.__file__, request.job]
        _close([lifeline_r, *passed.values()])  # the child has its copies
        pidfd = os.pidfd_open(pid)
        self.running[ident] = _Running(ident, pid, pidfd, lifeline_w)
        self.selector.register(pidfd, selectors.EVENT_READ, ident)
        self._send(Started(ident, pid))
        return None

    def _become_worker(
        self, stderr: str, lifeline_r: int, lifeline_w: int, passed: dict[int, int]
    ) -> None:
        """In the forked child: the descriptors a spawned worker has, and nothing else."""
        self.selector.close()
        self.conn.close()
        for running in self.running.values():
            os.close(running.pidfd)
            os.close(running.lifeline)
        os.close(lifeline_w)
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((null, 0), (null, 1), (err, 2)):
            os.dup2(fd, target)
        os.close(null)
        os.close(err)
        lifeline = _place(passed, lifeline_r)
        os.set_inheritable(lifeline, True)
        os.environ[LIFELINE_ENV] = str(lifeline)

    def _reap(self, ident: int) -> None:
        running = self.running.pop(ident)
        self.selector.unregister(running.pidfd)
        _, status = os.waitpid(running.pid, 0)
        os.close(running.pidfd)
        os.close(running.lifeline)
        self._send(Exited(ident, os.waitstatus_to_exitcode(status)))

    def _send(self, message: ZygoteReport) -> None:
        self.conn.send(encode(message))

    def _end(self) -> None:
        for running in self.running.values():
            kill_tree(running.pid)
        os._exit(0)


def _place(passed: dict[int, int], lifeline: int) -> int:
    """Put each received descriptor at its number in the runner (``passed``: number ->
    descriptor here), as ``pass_fds`` would; returns the lifeline's number, moved if it was
    in the way. Everything is first moved above every wanted number, so nothing collides."""
    floor = max([*passed, 2]) + 1
    moved = {want: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for want, fd in passed.items()}
    high_lifeline = fcntl.fcntl(lifeline, fcntl.F_DUPFD_CLOEXEC, floor)
    _close([*passed.values(), lifeline])
    for want, fd in moved.items():
        os.dup2(fd, want)  # inheritable, as pass_fds makes them
        os.close(fd)
    return high_lifeline


def _enter(root: str) -> None:
    """Run in ``root`` as ``python -m`` started there would: its working directory, and
    first on ``sys.path`` where the zygote's own folder was."""
    before = os.getcwd()
    os.chdir(root)
    if sys.path and sys.path[0] == before:
        sys.path[0] = os.getcwd()


def _origins() -> dict[str, list[str]]:
    """Where each top-level module the zygote imported was loaded from (a package's
    folders, a module's file); built-in and frozen modules, found before any folder, are
    left out. A run's folder that holds another file or folder under one of these names
    would shadow it in a fresh interpreter (:meth:`harness.zygote.Zygote.serves`)."""
    found: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if "." in name or spec is None or name == "__main__":
            continue
        if spec.submodule_search_locations is not None:
            found[name] = [os.path.realpath(p) for p in spec.submodule_search_locations]
        elif spec.has_location and spec.origin:
            found[name] = [os.path.realpath(spec.origin)]
    return found


def _close(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


def _preload() -> None:
    """Import what every worker imports, and what the SDK imports on first use."""
    import openai

    import harness.worker  # noqa: F401 - the gateway, probe, scenario loader, factories
    from harness.environment import fingerprint

    fingerprint()  # the same in every fork: read once here

    client = openai.OpenAI(api_key="preload", base_url="http://127.0.0.1:9/v1")
    # Each resource is imported on first access; `responses` is missing from older 1.x SDKs.
    _ = (client.chat.completions, getattr(client, "responses", None), client.models)
    client.close()
    del client, _
    # An async gateway's first request imports anyio's asyncio backend (about a tenth of an
    # async worker's CPU when each worker did it); no loop or thread outlives this.
    asyncio.run(_preload_async())
    gc.collect()  # each fork starts with the zygote's young generations empty
    # What survived is the imported stack, never garbage: frozen, a worker's gc.collect()
    # scans only what its run made (tens of ms less per collection) and its pages stay shared.
    gc.freeze()


async def _preload_async() -> None:
    import anyio  # an openai dependency on every line

    anyio.Event()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.zygote SOCKET``: serve forks; in a forked child, run the worker."""
    args = list(sys.argv[1:] if argv is None else argv)
    guard()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.connect(args[0])
    _preload()
    origins = Path(args[0]).with_name(ORIGINS)
    origins.write_text(json.dumps(_origins()), encoding="utf-8")
    conn.send(encode(Ready()))
    worker_argv = _Server(conn).serve()
    sys.argv = worker_argv
    from harness.worker import main as worker_main

    return worker_main(worker_argv[1:])


if __name__ == "__main__":
    leave(main())
