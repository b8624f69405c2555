"""Probe: CLOSE_WAIT, ESTABLISHED and fds toward one port, on sockets put there on purpose.

Every test runs twice: with the probe asking each socket (harness.ownsockets) and with its
psutil fallback, so both give the same counts."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from _wait import until

from harness import ownsockets
from harness.probe import Probe
from harness.result import SocketSample


@pytest.fixture(autouse=True, params=["sockets", "psutil"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "psutil":
        monkeypatch.setattr(ownsockets, "usable", lambda: False)
    elif not ownsockets.usable():
        pytest.skip("no TCP_INFO or /proc/self/fd on this machine")
    return str(request.param)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _connect(listener: socket.socket, clients: list[socket.socket]) -> socket.socket:
    client = socket.create_connection(listener.getsockname())
    clients.append(client)
    return client


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def test_counts_close_wait_from_a_peer_that_closed(
    listener: socket.socket, clients: list[socket.socket]
) -> None:
    probe = Probe(_port(listener))
    for _ in range(3):
        _connect(listener, clients)
        conn, _ = listener.accept()
        conn.close()  # FIN to the client, which keeps its fd: CLOSE_WAIT
    until(lambda: probe.counts().close_wait == 3)
    assert probe.counts().established == 0


def test_counts_established_but_not_the_servers_own_end(
    listener: socket.socket, clients: list[socket.socket]
) -> None:
    probe = Probe(_port(listener))
    accepted = []
    for _ in range(2):
        _connect(listener, clients)
        accepted.append(listener.accept()[0])
    try:
        # Both ends live in this process; only the two client ends point at the port.
        counts = probe.counts()
        assert (counts.close_wait, counts.established) == (0, 2)
    finally:
        for conn in accepted:
            conn.close()


def test_ignores_sockets_toward_other_ports(
    listener: socket.socket, clients: list[socket.socket]
) -> None:
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(1)
    try:
        _connect(listener, clients)
        conn, _ = listener.accept()
        conn.close()
        probe = Probe(_port(other))
        own = Probe(_port(listener))
        until(lambda: own.counts().close_wait == 1)
        assert (probe.counts().close_wait, probe.counts().established) == (0, 0)
    finally:
        other.close()


def test_a_socket_reset_by_the_peer_shows_only_in_fds(
    listener: socket.socket, clients: list[socket.socket]
) -> None:
    probe = Probe(_port(listener))
    before = probe.counts().fds
    client = _connect(listener, clients)
    conn, _ = listener.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST: the client's socket leaves every listed TCP state
    until(lambda: _reset_seen(client))
    counts = probe.counts()
    assert (counts.close_wait, counts.established) == (0, 0)
    assert counts.fds == before + 1


def _reset_seen(client: socket.socket) -> bool:
    client.setblocking(False)
    try:
        client.recv(1)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_fds_count_open_sockets(listener: socket.socket, clients: list[socket.socket]) -> None:
    probe = Probe(_port(listener))
    before = probe.counts().fds
    _connect(listener, clients)
    accepted, _ = listener.accept()
    try:
        assert probe.counts().fds == before + 2
    finally:
        accepted.close()
    assert probe.counts().fds == before + 1


def test_sample_is_a_socket_sample(listener: socket.socket, clients: list[socket.socket]) -> None:
    probe = Probe(_port(listener))
    _connect(listener, clients)
    conn, _ = listener.accept()
    conn.close()
    until(lambda: probe.counts().close_wait == 1)
    sample = probe.sample("turn 4", 4)
    assert sample == SocketSample(
        label="turn 4", close_wait=1, established=0, fds=probe.counts().fds, turn=4
    )
    assert probe.sample("start").turn == 0


@pytest.mark.parametrize("family", [socket.AF_INET6, "v4-mapped"])
def test_counts_ipv6_loopback_and_v4_mapped_peers(family: object, reader: str) -> None:
    """A server on ::1, and an IPv4 one reached from an IPv6 socket (::ffff:127.0.0.1)."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    server = socket.socket(socket.AF_INET6 if family == socket.AF_INET6 else socket.AF_INET)
    client = socket.socket(socket.AF_INET6)
    try:
        try:
            server.bind(("::1", 0) if family == socket.AF_INET6 else ("127.0.0.1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        server.listen(1)
        port = _port(server)
        client.connect(("::1", port) if family == socket.AF_INET6 else ("::ffff:127.0.0.1", port))
        conn, _ = server.accept()
        probe = Probe(port)
        assert probe.counts().established == 1
        assert probe.read().established_ports() == {client.getsockname()[1]}
        conn.close()
        until(lambda: probe.counts().close_wait == 1)
        assert probe.read().held() == [(client.fileno(), "CLOSE_WAIT")]
    finally:
        client.close()
        server.close()


def test_reading_leaves_every_fd_as_it_was(
    listener: socket.socket, clients: list[socket.socket]
) -> None:
    """Each socket is asked through a duplicate fd: the reading closes the duplicates only,
    and a UDP socket or a socket pair is no TCP socket toward the port."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(listener.getsockname())  # a datagram "peer" on the same port number
    pair = socket.socketpair()
    try:
        client = _connect(listener, clients)
        conn, _ = listener.accept()
        probe = Probe(_port(listener))
        before = probe.counts()
        for _ in range(5):
            assert probe.counts() == before
        assert (before.close_wait, before.established) == (0, 1)
        client.sendall(b"ping")  # the probed fd is still the open, connected socket
        assert conn.recv(4) == b"ping"
        conn.close()
    finally:
        udp.close()
        for end in pair:
            end.close()
