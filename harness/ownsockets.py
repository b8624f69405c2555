"""This process's TCP sockets toward one port, each socket asked for its own state.

Why not a table: psutil's ``net_connections`` reads ``/proc/net/tcp*``, which the kernel
builds by walking its whole connection table, and a sock_diag netlink dump walks the whole
established hash (262,144 buckets on the 2-core box it was measured on, for IPv4 and again
for IPv6): 3 ms of CPU a reading whatever the process holds. A worker reads before each
sample and polls while it settles, so that was the largest CPU cost of a regress. The
sampled process is always the caller, so it can ask its own sockets instead:
``getsockopt(TCP_INFO)`` (whose first byte is the kernel's TCP state) and ``getpeername`` on
a duplicate of each socket fd, 0.3 ms for ten sockets, in any network namespace.

The fds come from ``/proc/self/fd``, as psutil's do, so the counts are the same. A socket
that another thread closes during a reading sends its FIN when the duplicate is closed,
microseconds later.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Final

from harness.loopback import is_loopback

__all__ = ["STATES", "Conn", "toward", "usable"]

# The kernel's TCP state numbers (include/net/tcp_states.h) of the two states sampled.
STATES: Final = {1: "ESTABLISHED", 8: "CLOSE_WAIT"}
_FDS: Final = "/proc/self/fd"


@dataclass(frozen=True)
class Conn:
    """A socket of this process whose remote end is the port on loopback."""

    fd: int
    status: str  # "ESTABLISHED" or "CLOSE_WAIT"
    local_port: int


def usable() -> bool:
    """Whether :func:`toward` works here: Linux (``TCP_INFO``, ``/proc/self/fd``)."""
    return hasattr(socket, "TCP_INFO") and os.path.isdir(_FDS)


def toward(port: int) -> tuple[list[Conn], int]:
    """This process's sockets whose remote end is ``port`` on loopback, in ESTABLISHED or
    CLOSE_WAIT, and its number of open fds."""
    names = os.listdir(_FDS)
    found: list[Conn] = []
    for name in names:
        try:
            target = os.readlink(f"{_FDS}/{name}")
        except OSError:
            continue  # closed between the listing and the read
        if target.startswith("socket:"):
            conn = _ask(int(name), port)
            if conn is not None:
                found.append(conn)
    return found, len(names)


def _ask(fd: int, port: int) -> Conn | None:
    """``fd``'s state and ports, read through a duplicate (closing it leaves ``fd`` open)."""
    try:
        dup = os.dup(fd)
    except OSError:
        return None  # closed since the listing
    try:
        sock = socket.socket(fileno=dup)
    except OSError:  # no longer a socket: the number was reused
        os.close(dup)
        return None
    with sock:
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            return None
        try:
            state = STATES.get(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0])
            if state is None:
                return None
            remote, remote_port = sock.getpeername()[:2]
            if remote_port != port or not is_loopback(remote):
                return None
            return Conn(fd, state, sock.getsockname()[1])
        except OSError:
            return None  # reset or closed meanwhile: in neither state
