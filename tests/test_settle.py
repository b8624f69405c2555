"""The settle channel: runner-side responder, worker-side settler, and the kernel wait."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from harness.errors import WorkerError
from harness.probe import Probe
from harness.settle import Settler, SettleResponder


@contextmanager
def connected() -> Iterator[tuple[socket.socket, socket.socket, Probe]]:
    """A client socket toward a plain loopback listener, its server end, and a probe."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server_end, _ = listener.accept()
        try:
            yield client, server_end, Probe(port)
        finally:
            client.close()
            server_end.close()


@contextmanager
def channel(
    settle: Callable[[float], frozenset[int]], probe: Probe, **kw: float
) -> Iterator[Settler]:
    responder = SettleResponder(settle)
    settler = Settler(os.dup(responder.child_fd), probe, **kw)
    responder.started_child()
    try:
        yield settler
    finally:
        settler.close()
        responder.close()


def test_settle_waits_until_the_kernel_shows_the_servers_close() -> None:
    with connected() as (_client, server_end, probe):
        timers: list[threading.Timer] = []

        def settle(timeout_s: float) -> frozenset[int]:
            # The server answers before its FIN is out: the settler must wait for the kernel.
            timer = threading.Timer(0.05, server_end.shutdown, (socket.SHUT_WR,))
            timers.append(timer)
            timer.start()
            return frozenset()

        with channel(settle, probe) as settler:
            assert probe.counts().close_wait == 0
            reading = settler.settle()
            counts = probe.counts()
        timers[0].join()
    assert (counts.close_wait, counts.established) == (1, 0)
    assert reading.counts() == counts  # the reading it returns is the settled one


def test_a_connection_the_server_keeps_open_is_not_waited_for() -> None:
    with connected() as (client, _server_end, probe):
        port = client.getsockname()[1]
        with channel(lambda timeout_s: frozenset({port}), probe) as settler:
            settler.settle()
            counts = probe.counts()
    assert probe.read().established_ports() == frozenset()
    assert (counts.close_wait, counts.established) == (0, 1)


def test_a_server_that_cannot_settle_fails_the_sample() -> None:
    def settle(timeout_s: float) -> frozenset[int]:
        raise TimeoutError(f"the mock server did not settle within {timeout_s} s")

    with (
        connected() as (_client, _server_end, probe),
        channel(settle, probe) as settler,
        pytest.raises(WorkerError) as info,
    ):
        settler.settle()
    assert str(info.value) == (
        "the mock server could not settle: settle failed: TimeoutError: "
        "the mock server did not settle within 10.0 s"
    )


def test_a_socket_that_never_closes_is_a_bounded_wait() -> None:
    with connected() as (client, _server_end, probe):
        port = client.getsockname()[1]
        with (
            channel(lambda timeout_s: frozenset(), probe, kernel_timeout_s=0.2) as settler,
            pytest.raises(WorkerError) as info,
        ):
            settler.settle()
    assert str(info.value) == (
        f"sockets from ports [{port}] are still ESTABLISHED 0.2 s after the server closed them"
    )


def test_a_runner_that_went_away_is_an_error() -> None:
    with connected() as (_client, _server_end, probe):
        responder = SettleResponder(lambda timeout_s: frozenset())
        settler = Settler(os.dup(responder.child_fd), probe)
        responder.close()  # also closes its copy of the worker's end
        with pytest.raises(WorkerError) as info:
            settler.settle()
        settler.close()
    assert str(info.value) == "cannot reach the runner to settle: [Errno 32] Broken pipe"


def test_an_answer_the_worker_did_not_live_to_read_is_dropped_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog kills a worker that has asked to settle: the answer meets a closed
    channel, and the responder's thread ends without an exception (it once raised when the
    buffered answer was flushed a second time, as the stream closed)."""
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    killed = threading.Event()

    def settle(timeout_s: float) -> frozenset[int]:
        killed.wait(10)
        return frozenset({1234})

    responder = SettleResponder(settle)
    worker_end = socket.socket(fileno=os.dup(responder.child_fd))
    responder.started_child()
    worker_end.sendall(b"settle\n")
    worker_end.close()  # the worker dies before the answer
    killed.set()
    responder.close()
    assert raised == []
