"""The zygote process: ``python -m harness.zygote_process SOCKET`` (see :mod:`harness.zygote`).

It connects to the runner's SOCKET (SOCK_SEQPACKET: one message each, descriptors travel
with their request; the messages are :mod:`harness.messages`), imports what every worker
imports, says ``Ready``, and then serves: a ``ForkRequest`` starts a worker (``Started``,
or ``ForkFailed``), a ``KillRequest`` kills one's tree, and every exit is reported
(``Exited``). It reaps its children only in its own loop, after noticing the exit on a
pidfd, so a pid it kills is never a reused one. When the runner hangs up it kills what it
forked and exits. The runner, its owner, can hand it more connections (``AttachRequest``,
the connection sent beside it): each is served the same way, for its own runs, and its
hang-up kills only those (:meth:`harness.zygote.Zygote.share`). In a forked child
:func:`main` returns from the loop and runs :func:`harness.worker.main`, as ``python -m
harness.worker JOB`` would.
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
    AttachRequest,
    Exited,
    ForkFailed,
    ForkRequest,
    KillRequest,
    Ready,
    Started,
    ZygoteReport,
    ZygoteRequest,
    encode,
    parse_request,
    start_digest,
)
from harness.processes import LIFELINE_ENV, guard, kill_tree, leave

__all__ = ["main"]

EXIT_SETUP: Final = 70  # a forked child failed before it became a worker (EX_SOFTWARE)
FDS_MAX: Final = 16  # descriptors one run passes to its worker (pass_fds)


@dataclass(eq=False)
class _Client:
    """One connection the zygote serves: its owner's (the first), or one attached later."""

    conn: socket.socket
    owner: bool = False


@dataclass(eq=False)
class _Running:
    client: _Client  # who asked: its reports go there, its hang-up kills this run
    ident: int  # the client's id for the run (each client numbers its own)
    pid: int
    pidfd: int
    lifeline: int  # the write end; the worker's supervisor reads EOF when the zygote dies


class _Server:
    """The zygote's loop: fork on request, kill on request, report every exit, on each
    connection it serves. The owner's hang-up ends the zygote and every run; another
    client's ends that client's runs."""

    def __init__(self, conn: socket.socket, ready: Ready) -> None:
        self.ready = ready
        self.selector = selectors.DefaultSelector()
        self.clients: list[_Client] = []
        self.running: list[_Running] = []
        self._serve(_Client(conn, owner=True))

    def serve(self) -> list[str]:
        """Serve until the owner hangs up (then exit); returns only in a forked child,
        with the worker's argv."""
        while True:
            for key, _ in self.selector.select():
                if isinstance(key.data, _Running):
                    self._reap(key.data)
                    continue
                client: _Client = key.data
                data, fds, _, _ = socket.recv_fds(client.conn, MESSAGE_MAX, FDS_MAX)
                if not data:
                    self._hang_up(client)
                    continue
                argv = self._handle(client, parse_request(data), fds)
                if argv is not None:
                    return argv

    def _serve(self, client: _Client) -> None:
        self.clients.append(client)
        self.selector.register(client.conn, selectors.EVENT_READ, client)
        self._send(client, self.ready)

    def _hang_up(self, client: _Client) -> None:
        if client.owner:
            self._end()
        self.selector.unregister(client.conn)
        client.conn.close()
        self.clients.remove(client)
        for running in self.running:
            if running.client is client:
                kill_tree(running.pid)  # reaped in the loop; its report goes nowhere

    def _handle(self, client: _Client, request: ZygoteRequest, fds: list[int]) -> list[str] | None:
        if isinstance(request, AttachRequest):
            if client.owner and len(fds) == 1:
                self._serve(_Client(socket.socket(fileno=fds[0])))
            else:  # only the owner hands out connections, one at a time
                _close(fds)
            return None
        if isinstance(request, KillRequest):
            for running in self.running:  # not found: reaped, its exit report is on its way
                if running.client is client and running.ident == request.id:
                    kill_tree(running.pid)
            return None
        passed = dict(zip(request.fds, fds, strict=True))
        _warm(request.job)  # what its API costs on first use, once, here
        if threading.active_count() != 1:  # forking a threaded process is unsafe
            _close(fds)
            self._send(client, ForkFailed(request.id, f"{threading.active_count()} threads"))
            return None
        return self._fork(client, request, passed)

    def _fork(
        self, client: _Client, request: ForkRequest, passed: dict[int, int]
    ) -> list[str] | None:
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
        running = _Running(client, request.id, pid, os.pidfd_open(pid), lifeline_w)
        self.running.append(running)
        self.selector.register(running.pidfd, selectors.EVENT_READ, running)
        self._send(client, Started(request.id, pid))
        return None

    def _become_worker(
        self, stderr: str, lifeline_r: int, lifeline_w: int, passed: dict[int, int]
    ) -> None:
        """In the forked child: the descriptors a spawned worker has, and nothing else."""
        self.selector.close()
        for client in self.clients:
            client.conn.close()
        for running in self.running:
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

    def _reap(self, running: _Running) -> None:
        self.running.remove(running)
        self.selector.unregister(running.pidfd)
        _, status = os.waitpid(running.pid, 0)
        os.close(running.pidfd)
        os.close(running.lifeline)
        if running.client in self.clients:
            self._send(running.client, Exited(running.ident, os.waitstatus_to_exitcode(status)))

    def _send(self, client: _Client, message: ZygoteReport) -> None:
        try:
            client.conn.send(encode(message))
        except OSError:  # a client that died: its hang-up, read next, ends its runs
            if client.owner:
                raise

    def _end(self) -> None:
        for running in self.running:
            kill_tree(running.pid)
        os._exit(0)


def _warm(job: str | None = None) -> None:
    """Warm the SDK (:mod:`harness.warmup`) for the chat API, or for the API of ``job``'s
    scenario; a failure only costs each run what it did."""
    from harness.warmup import warm, warm_for_job  # imported by _preload, not before

    try:
        if job is None:
            warm("chat.completions")
        else:
            warm_for_job(job)
    except Exception as exc:  # an SDK or a job this warm-up does not know
        print(f"harness zygote: warm-up skipped: {type(exc).__name__}: {exc}", file=sys.stderr)


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

    # What a client the factory builds imports and sets up on first use (its HTTP client's
    # TLS context); each resource is imported where it is warmed, on first access.
    openai.OpenAI(api_key="preload", base_url="http://127.0.0.1:9/v1").close()
    _warm()  # the chat API, most runs'; the Responses API waits for its first run
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
    # how it was started, before any import could touch the environment
    digest = start_digest(sys.executable, os.environ)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.connect(args[0])
    _preload()
    origins = Path(args[0]).with_name(ORIGINS)
    origins.write_text(json.dumps(_origins()), encoding="utf-8")
    worker_argv = _Server(conn, Ready(str(origins), digest)).serve()
    sys.argv = worker_argv
    from harness.worker import main as worker_main

    return worker_main(worker_argv[1:])


if __name__ == "__main__":
    leave(main())
