"""The mock server's socket layer: asyncio + h11 around the sans-IO core.

Each :class:`MockServer` runs its own event loop in a daemon thread, so several can serve at
once in one process and a blocking caller (the sync openai SDK) can share the process. What to
answer comes from :mod:`harness.mockserver.answer` (routing, request parsing, and OpenAI's
bodies from cached templates), which fault a call gets from :mod:`harness.mockserver.faults`,
and the bytes and pauses of the answer from :mod:`harness.mockserver.wire`;
:mod:`harness.mockserver.machine` (sans-IO) parses requests with h11, runs the deadlines and
decides how connections end (FIN, RST or silent), and :mod:`harness.mockserver.connection`
drives it on asyncio's callbacks; this module listens, caps connections, settles and stops.

Speed (see docs/mockserver.md, benchmarks/bench_server.py): a connection is an
``asyncio.Protocol`` that answers a request inside ``data_received`` when the answer has no
pause, so a plain request costs one h11 parse, a few dict lookups and one ``transport.write``:
no task switch, no StreamReader, no ``drain()`` unless the transport is paused. The ledger's
lock is uncontended in the loop thread (about 0.1 us); ``stats()`` takes it from other threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from typing import Literal

from harness.errors import UsageError
from harness.loopback import is_loopback
from harness.mockserver.calllog import DEFAULT_CALL_LOG_LIMIT
from harness.mockserver.connection import Connection
from harness.mockserver.faults import CallLedger
from harness.result import ServerStats
from harness.schema import ServerSpec

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "MockServer",
    "check_loopback",
]

DEFAULT_MAX_CONNECTIONS = 1000  # open sockets, draining ones included; below the usual 1024 fds
DEFAULT_REQUEST_TIMEOUT_S = 10.0  # from a request's first byte to its last


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback IP address (127.0.0.0/8 or ::1), else UsageError."""
    if not is_loopback(host):
        raise UsageError(
            f"refusing to serve on {host!r}: the mock server binds to loopback only"
            " (127.0.0.0/8 or ::1); use 127.0.0.1"
        )
    return host


class MockServer:
    """A fake OpenAI API on loopback that misbehaves as its :class:`ServerSpec` says.

    Lifecycle: ``start()`` once (returns when listening), ``stop()`` any number of times.
    """

    def __init__(
        self,
        spec: ServerSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        call_log_limit: int = DEFAULT_CALL_LOG_LIMIT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.host = check_loopback(host)
        if not 0 <= port <= 65535:
            raise UsageError(f"port {port} is not a TCP port; use 0..65535 (0 picks a free one)")
        self.port = port
        if max_connections < 1:
            raise UsageError(f"max_connections {max_connections} is below 1; use 1 or more")
        if not request_timeout_s > 0:
            raise UsageError(f"request timeout {request_timeout_s!r} s is not above 0")
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        if call_log_limit < 0:
            raise UsageError(f"call log limit {call_log_limit} is negative; use 0 or more")
        self._ledger = CallLedger(spec.faults, clock, call_log_limit=call_log_limit)
        self._state: Literal["new", "running", "stopped"] = "new"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: OSError | None = None
        self._listening = False
        self._serials = itertools.count(1)
        self._connections: set[Connection] = set()
        self._settling: set[asyncio.Task[None]] = set()  # strong references while they run

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def __repr__(self) -> str:
        return f"<MockServer {self.base_url} {self._state}>"

    def start(self) -> None:
        """Listen and serve in a daemon thread; return once the socket is listening."""
        if self._state != "new":
            raise RuntimeError(f"cannot start a MockServer that is {self._state}; make a new one")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._main(ready),),
            name=f"mockserver-{self.host}:{self.port}",
            daemon=True,
        )
        self._state = "running"
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._state = "stopped"
            raise UsageError(
                f"cannot listen on {self.host}:{self.port}: "
                f"{self._startup_error.strerror}; pick another port"
            ) from self._startup_error
        if not self._listening:  # the thread died of something else; it reported it
            self._thread.join()  # its loop is gone: nothing to signal, only to wait for
            self._state = "stopped"
            raise RuntimeError("the mock server's thread failed before listening")

    def stop(self) -> None:
        """Close the listener and every connection, and join the thread. Idempotent."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._loop and self._stopping:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if thread is not None:
            thread.join()
        self._state = "stopped"

    def __enter__(self) -> MockServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> ServerStats:
        """A frozen snapshot of the server's counts; safe from any thread."""
        return self._ledger.snapshot()

    def reset(self) -> None:
        """Zero the counters and the call index; safe from any thread."""
        self._ledger.reset()

    def settle(self, timeout_s: float = 2.0) -> frozenset[int]:
        """Run every overdue idle close now, wait until it is on the wire, and return the peer
        (client-side) ports of the connections the server still considers open.

        Thread-safe; call it from any thread but the server's. In the server's loop, each
        keep-alive connection whose idle deadline has passed is closed at once, as its timer
        would have closed it (a busy or delayed loop may not have run the timer yet); settle
        returns once those FINs and RSTs (and any close already under way) have left. A
        connection serving or gone silent is open; one the server has ended is not, so a
        client socket that is ESTABLISHED toward the server and whose port is not in the set
        turns CLOSE_WAIT (FIN) or disappears (RST) within moments. A stopped server has no
        open connections. ``TimeoutError`` if this takes longer than ``timeout_s``.
        """
        if self._state == "stopped":
            return frozenset()
        loop = self._loop
        if self._state != "running" or loop is None or not self._listening:
            raise RuntimeError(f"cannot settle a MockServer that is {self._state}; start it")
        if threading.current_thread() is self._thread:
            raise RuntimeError("settle() waits for the server's loop; call it from another thread")
        # A plain callback, not a task: it runs before timers that fall due in the same loop
        # step, so an overdue close is settle's to run even when the loop was held up.
        future: concurrent.futures.Future[frozenset[int]] = concurrent.futures.Future()
        loop.call_soon_threadsafe(self._settle_now, future)
        try:
            return future.result(timeout_s)
        except TimeoutError as exc:
            future.cancel()
            raise TimeoutError(f"the mock server did not settle within {timeout_s} s") from exc

    def _settle_now(self, future: concurrent.futures.Future[frozenset[int]]) -> None:
        if not future.set_running_or_notify_cancel():
            return  # the caller timed out before the loop got here
        try:
            now = asyncio.get_running_loop().time()
            connections = list(self._connections)
            reaped = [conn for conn in connections if conn.reap_if_due(now)]
            closing = [c for c in connections if c.transport and c.transport.is_closing()]
            pending = [conn for conn in reaped + closing if not conn.close_written]
        except Exception as exc:  # a bug in the mock: settle() raises it in the caller
            future.set_exception(exc)
            return
        if not pending:
            future.set_result(self._open_ports())
            return
        task = asyncio.get_running_loop().create_task(self._settle_wait(pending, future))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle_wait(
        self, pending: list[Connection], future: concurrent.futures.Future[frozenset[int]]
    ) -> None:
        """Wait until ``pending`` closes are on the wire, then hand over the open ports."""
        delay = 0.0  # an abort or close() finishes in the next loop step; a FIN may wait longer
        try:
            while pending and not future.done():
                await asyncio.sleep(delay)
                delay = 0.001
                pending = [conn for conn in pending if not conn.close_written]
        finally:  # also when the server stops meanwhile: its connections are all closing
            if not future.done():
                future.set_result(self._open_ports())

    def _open_ports(self) -> frozenset[int]:
        return frozenset(conn.peer_port for conn in self._connections if conn.is_open)

    async def _main(self, ready: threading.Event) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        connections = self._connections

        def accept() -> Connection:
            return Connection(
                self.spec,
                self._ledger,
                next(self._serials),
                connections,
                max_connections=self.max_connections,
                request_timeout_s=self.request_timeout_s,
            )

        try:
            server = await loop.create_server(accept, self.host, self.port, backlog=1024)
            self.port = server.sockets[0].getsockname()[1]
            self._listening = True
        except OSError as exc:
            self._startup_error = exc
            return
        finally:
            ready.set()  # whatever happened, start() must not wait forever
        await self._stopping.wait()
        server.close()
        for conn in list(connections):
            conn.shutdown()
        await server.wait_closed()
        for _ in range(3):  # let the transports' connection_lost callbacks close the sockets
            await asyncio.sleep(0)
        for conn in list(connections):  # a client that never read its answer: drop it now
            conn.abort()
        await asyncio.sleep(0)
