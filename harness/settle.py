"""Samples synchronised with the mock server's state, across the worker/runner boundary.

Theory of operation. A CLOSE_WAIT count is only meaningful once every idle reap the server
owes has happened: on a loaded machine the server's idle timer may fire late, and a sample
taken before it reads one socket short (the series ``1 2 2 3`` for ``1 2 3 4``). So before
each sample the worker asks the server, which lives in the runner's process, to *settle*
(:meth:`harness.mockserver.MockServer.settle`): run at once every idle close whose deadline
has passed, wait until those closes are written, and return the client-side ports of the
connections it still considers open. The worker then waits, bounded, until the kernel agrees:
no socket of the worker toward the server is still ESTABLISHED unless its local port is in
that set (a FIN turns it to CLOSE_WAIT, an RST removes it, both within moments).

The channel is a Unix socket pair made by the runner (:class:`SettleResponder`); the worker
inherits one end (its fd number travels in the job) and speaks one line each way:
``settle`` -> ``{"open": [port, ...]}`` or ``{"error": "..."}``. It is not a TCP connection,
so the probe, which counts TCP sockets toward the server's port, never sees it. Every wait
is bounded; a failure raises :class:`~harness.errors.WorkerError`, which fails the run
loudly rather than letting it record an unsynchronised sample.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Final

from harness.errors import WorkerError
from harness.probe import Probe, Reading

__all__ = ["SETTLE_TIMEOUT_S", "SettleResponder", "Settler"]

SETTLE_TIMEOUT_S: Final = 10.0  # the server's bound on writing its owed closes
REPLY_TIMEOUT_S: Final = 60.0  # the worker's bound on the answer (a loaded runner is slow)
KERNEL_TIMEOUT_S: Final = 5.0  # loopback delivers a FIN at once; this only bounds a bug
_POLL_S: Final = 0.001


class SettleResponder:
    """Runner side: a thread that answers the worker's settle requests with ``settle()``.

    Use: construct, pass :attr:`child_fd` to the worker (``pass_fds``), call
    :meth:`started_child` once the worker runs, and :meth:`close` when it has exited.
    """

    def __init__(self, settle: Callable[[float], frozenset[int]]) -> None:
        self._settle = settle
        self._parent, self._child = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="settle-responder", daemon=True)
        self._thread.start()

    @property
    def child_fd(self) -> int:
        return self._child.fileno()

    def started_child(self) -> None:
        """Drop the runner's copy of the worker's end, so the worker's exit reads as EOF."""
        self._child.close()

    def close(self) -> None:
        """Stop answering and join the thread; the worker has exited by now."""
        self._child.close()
        # Wakes the thread's blocking read; OSError: already disconnected, it saw EOF.
        with contextlib.suppress(OSError):
            self._parent.shutdown(socket.SHUT_RDWR)
        self._thread.join()
        self._parent.close()

    def _serve(self) -> None:
        stream = self._parent.makefile("rwb")
        try:
            for line in stream:
                if line.strip() != b"settle":
                    reply: dict[str, object] = {"error": f"unknown request {line[:40]!r}"}
                else:
                    try:
                        reply = {"open": sorted(self._settle(SETTLE_TIMEOUT_S))}
                    except Exception as exc:  # reported to the worker, which fails the run
                        reply = {"error": f"settle failed: {type(exc).__name__}: {exc}"}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()
        except OSError:
            pass  # the worker is gone (killed by the watchdog, say): nobody waits for an answer
        finally:
            # An answer the worker did not live to read is still buffered: closing the stream
            # flushes it again, into the same broken pipe.
            with contextlib.suppress(OSError):
                stream.close()


class Settler:
    """Worker side: make the next sample see every reap the server owes (see module doc)."""

    def __init__(
        self, fd: int, probe: Probe, *, kernel_timeout_s: float = KERNEL_TIMEOUT_S
    ) -> None:
        self._kernel_timeout_s = kernel_timeout_s
        self._sock = socket.socket(fileno=fd)
        self._sock.set_inheritable(False)  # the factory's children must not hold the channel
        self._sock.settimeout(REPLY_TIMEOUT_S)
        self._replies = self._sock.makefile("rb")
        self._probe = probe

    def settle(self) -> Reading:
        """Ask the server to settle, wait until the kernel shows what it closed, and return
        the probe's reading that shows it (the sample to record)."""
        open_ports = self._ask()
        deadline = time.monotonic() + self._kernel_timeout_s
        while True:
            reading = self._probe.read()
            stray = reading.established_ports() - open_ports
            if not stray:
                return reading
            if time.monotonic() >= deadline:
                raise WorkerError(
                    f"sockets from ports {sorted(stray)} are still ESTABLISHED "
                    f"{self._kernel_timeout_s} s after the server closed them"
                )
            time.sleep(_POLL_S)

    def close(self) -> None:
        self._replies.close()
        self._sock.close()

    def _ask(self) -> frozenset[int]:
        try:
            self._sock.sendall(b"settle\n")
            line = self._replies.readline()
        except OSError as exc:
            raise WorkerError(f"cannot reach the runner to settle: {exc}") from exc
        if not line:
            raise WorkerError("the runner closed the settle channel")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"the mock server could not settle: {reply['error']}")
        return frozenset(int(port) for port in reply["open"])
