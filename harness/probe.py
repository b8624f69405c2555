"""Socket and fd sampling of one process, toward one server port (psutil).

The probe counts the process's TCP sockets whose REMOTE end is the mock server's port, so a
server in the same process (tests) is not counted, and its open file descriptors. A socket
the peer reset while the process still holds its fd is listed in no TCP state at all; the
fd count is what catches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil

from harness.loopback import is_loopback
from harness.result import SocketSample

__all__ = ["Probe", "SocketCounts"]


@dataclass(frozen=True)
class SocketCounts:
    """CLOSE_WAIT and ESTABLISHED sockets toward the port, and open fds, at one moment."""

    close_wait: int
    established: int
    fds: int


class Probe:
    """Samples process ``pid`` (``os.getpid()`` for this one) for sockets toward ``port``."""

    def __init__(self, port: int, pid: int) -> None:
        self.port = port
        self._process = psutil.Process(pid)

    def _toward(self) -> list[Any]:
        """The process's TCP sockets whose remote end is the server's port on loopback."""
        return [
            conn
            for conn in self._process.net_connections(kind="tcp")
            if conn.raddr and conn.raddr.port == self.port and is_loopback(conn.raddr.ip)
        ]

    def established_ports(self) -> frozenset[int]:
        """Local ports of the ESTABLISHED sockets toward the server (see harness.settle)."""
        return frozenset(
            conn.laddr.port for conn in self._toward() if conn.status == psutil.CONN_ESTABLISHED
        )

    def held(self) -> list[tuple[int, str]]:
        """(fd, status) of the CLOSE_WAIT and ESTABLISHED sockets toward the server, for leak
        attribution (:mod:`harness.attribution`); the fds are this process's own."""
        wanted = (psutil.CONN_CLOSE_WAIT, psutil.CONN_ESTABLISHED)
        return [(conn.fd, conn.status) for conn in self._toward() if conn.status in wanted]

    def counts(self) -> SocketCounts:
        close_wait = established = 0
        for conn in self._toward():
            if conn.status == psutil.CONN_CLOSE_WAIT:
                close_wait += 1
            elif conn.status == psutil.CONN_ESTABLISHED:
                established += 1
        return SocketCounts(close_wait, established, self._process.num_fds())

    def sample(self, label: str, turn: int = 0) -> SocketSample:
        """A :class:`SocketSample` named ``label`` ("start", "turn 3", "after gc")."""
        counts = self.counts()
        return SocketSample(
            label=label,
            close_wait=counts.close_wait,
            established=counts.established,
            fds=counts.fds,
            turn=turn,
        )
