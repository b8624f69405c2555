"""Socket and fd sampling of this process, toward one server port.

The probe counts the process's TCP sockets whose REMOTE end is the mock server's port, so a
server in the same process (tests) is not counted, and its open file descriptors. A socket
the peer reset while the process still holds its fd is listed in no TCP state at all; the
fd count is what catches it. On Linux it asks each socket (:mod:`harness.ownsockets`, ten
times cheaper than reading the kernel's connection table); elsewhere it asks psutil.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from harness import ownsockets
from harness.loopback import is_loopback
from harness.ownsockets import Conn
from harness.result import SocketSample

__all__ = ["Probe", "Reading", "SocketCounts"]


@dataclass(frozen=True)
class SocketCounts:
    """CLOSE_WAIT and ESTABLISHED sockets toward the port, and open fds, at one moment."""

    close_wait: int
    established: int
    fds: int


@dataclass(frozen=True)
class Reading:
    """The sockets toward the port in ESTABLISHED or CLOSE_WAIT, and the open fds, read at
    one moment (one listing of the process's fds)."""

    conns: tuple[Conn, ...]
    fds: int

    def counts(self) -> SocketCounts:
        close_wait = sum(1 for conn in self.conns if conn.status == "CLOSE_WAIT")
        return SocketCounts(close_wait, len(self.conns) - close_wait, self.fds)

    def established_ports(self) -> frozenset[int]:
        """Local ports of the ESTABLISHED sockets (see harness.settle)."""
        return frozenset(c.local_port for c in self.conns if c.status == "ESTABLISHED")

    def held(self) -> list[tuple[int, str]]:
        """(fd, status) of each socket, for leak attribution (:mod:`harness.attribution`);
        the fds are the sampled process's own."""
        return [(conn.fd, conn.status) for conn in self.conns]


class Probe:
    """Samples this process for sockets toward ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process = None if ownsockets.usable() else psutil.Process()

    def read(self) -> Reading:
        if self._process is None:
            conns, fds = ownsockets.toward(self.port)
            return Reading(tuple(conns), fds)
        found = tuple(
            Conn(conn.fd, str(conn.status), conn.laddr.port)
            for conn in self._process.net_connections(kind="tcp")
            if conn.raddr
            and conn.raddr.port == self.port
            and is_loopback(conn.raddr.ip)
            and conn.status in ownsockets.STATES.values()
        )
        return Reading(found, self._process.num_fds())

    def counts(self) -> SocketCounts:
        return self.read().counts()

    def sample(self, label: str, turn: int = 0, reading: Reading | None = None) -> SocketSample:
        """A :class:`SocketSample` named ``label`` ("start", "turn 3", "after gc") of
        ``reading``, or of a new one."""
        counts = (reading or self.read()).counts()
        return SocketSample(
            label=label,
            close_wait=counts.close_wait,
            established=counts.established,
            fds=counts.fds,
            turn=turn,
        )
