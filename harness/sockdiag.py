"""One process's TCP sockets toward one port, from Linux's sock_diag netlink interface.

Why not psutil: ``Process.net_connections`` reads ``/proc/net/tcp*``, which the kernel
builds by walking its whole connection table, TIME_WAIT included (10-30 ms a read on a busy
CI box), and then decodes every line in Python; a worker samples before each turn and polls
while it settles, and profiled, that was 40% of a regress's CPU. A sock_diag dump asks the
kernel for the ESTABLISHED and CLOSE_WAIT sockets only, as packed structs (what ``ss`` uses).

The process's socket inodes come from ``/proc/PID/fd`` (as psutil's), so the counts are the
same. The dump covers the caller's network namespace: :func:`usable` is True only for a
process in it. :mod:`harness.probe` falls back to psutil where this is not usable.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Final

from harness.loopback import is_loopback

__all__ = ["Conn", "SockDiag", "socket_fds", "toward", "usable"]

NETLINK_SOCK_DIAG: Final = 4
SOCK_DIAG_BY_FAMILY: Final = 20
NLM_F_REQUEST: Final = 0x1
NLM_F_DUMP: Final = 0x300
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
# The kernel's TCP state numbers (include/net/tcp_states.h) of the two states sampled.
STATES: Final = {1: "ESTABLISHED", 8: "CLOSE_WAIT"}

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then an inet_diag_sockid (unused
# in a dump without a filter: 48 zero bytes).
_REQUEST = struct.Struct("=BBBBI48x")
# inet_diag_msg: family, state, timer, retrans; sockid: sport, dport (big-endian), src, dst,
# interface, cookie; then expires, rqueue, wqueue, uid, inode.
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8xIIIII")


@dataclass(frozen=True)
class Conn:
    """A socket of the process whose remote end is the port on loopback."""

    fd: int
    status: str  # "ESTABLISHED" or "CLOSE_WAIT"
    local_port: int


def usable(pid: int) -> bool:
    """Whether :class:`SockDiag` can read ``pid``'s sockets: Linux, ``/proc/PID/fd``
    readable, ``pid`` in this process's network namespace, and the kernel answers a dump."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
            return False
        socket_fds(pid)
        with SockDiag() as diag:
            diag.dump(socket.AF_INET)
    except (OSError, AttributeError):  # AttributeError: no AF_NETLINK off Linux
        return False
    return True


def toward(pid: int, port: int) -> tuple[list[Conn], int]:
    """``pid``'s sockets whose remote end is ``port`` on loopback, and its open fds."""
    fds, inodes = socket_fds(pid)
    with SockDiag() as diag:
        return diag.toward(port, inodes), fds


def socket_fds(pid: int) -> tuple[int, dict[int, int]]:
    """(number of open fds, socket inode -> fd) of ``pid``; OSError when it is gone."""
    base = f"/proc/{pid}/fd"
    names = os.listdir(base)
    inodes: dict[int, int] = {}
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue  # closed between the listing and the read
        if target.startswith("socket:["):
            inodes[int(target[8:-1])] = int(name)
    return len(names), inodes


class SockDiag:
    """A netlink socket that dumps the ESTABLISHED and CLOSE_WAIT TCP sockets (one per
    reading: a long-lived one would need an owner to close it)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self._sock.set_inheritable(False)
        self._seq = 0

    def __enter__(self) -> SockDiag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def toward(self, port: int, inodes: dict[int, int]) -> list[Conn]:
        """The sockets among ``inodes`` (inode -> fd) whose remote end is ``port`` on a
        loopback address."""
        found: list[Conn] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for state, local_port, remote_port, remote, inode in self.dump(family):
                fd = inodes.get(inode)
                if fd is not None and remote_port == port and is_loopback(remote):
                    found.append(Conn(fd, STATES[state], local_port))
        return found

    def dump(self, family: int) -> list[tuple[int, int, int, str, int]]:
        """(state, local port, remote port, remote address, inode) of every ESTABLISHED and
        CLOSE_WAIT TCP socket of ``family`` in this network namespace."""
        self._seq += 1
        states = sum(1 << state for state in STATES)
        body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, states)
        header = _HEADER.pack(
            _HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, self._seq, 0
        )
        self._sock.sendto(header + body, (0, 0))
        rows: list[tuple[int, int, int, str, int]] = []
        while True:
            data = self._sock.recv(1 << 16)
            at = 0
            while at + _HEADER.size <= len(data):
                length, kind, _, seq, _ = _HEADER.unpack_from(data, at)
                if length < _HEADER.size:
                    raise OSError(f"sock_diag: a malformed reply ({length} bytes)")
                if seq == self._seq:
                    if kind == NLMSG_DONE:
                        return rows
                    if kind == NLMSG_ERROR:
                        (errno,) = struct.unpack_from("=i", data, at + _HEADER.size)
                        raise OSError(-errno, os.strerror(-errno))
                    rows.append(_row(data, at + _HEADER.size))
                at += (length + 3) & ~3  # NLMSG_ALIGN


def _row(data: bytes, at: int) -> tuple[int, int, int, str, int]:
    family, state, _, _, sport, dport, _, dst, *_, inode = _MESSAGE.unpack_from(data, at)
    return (
        state,
        int.from_bytes(sport, "big"),
        int.from_bytes(dport, "big"),
        _address(family, dst),
        inode,
    )


def _address(family: int, raw: bytes) -> str:
    """The remote address's text; an IPv4-mapped IPv6 address reads as the IPv4 one."""
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)
