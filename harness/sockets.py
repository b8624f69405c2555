"""Every TCP socket of a running process by remote endpoint and state (psutil), for ``watch``.

Reads only what the kernel shows the process's own user (``/proc/PID/fd`` and
``/proc/net/tcp*`` on Linux): no privileges, and no name lookups (endpoints are the
addresses as the kernel has them; an IPv4-mapped IPv6 address is shown as IPv4). Listening
sockets have no remote end and are not counted. psutil's errors are translated here: a
process that cannot be watched at all is a :class:`~harness.errors.UsageError` (one line
saying why), one that ends while watched is :class:`~harness.watch.ProcessGone`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

from harness.errors import UsageError
from harness.watch import Counts, ProcessGone, Sample

__all__ = ["Endpoint", "ProcessSockets", "endpoint_key", "parse_endpoint"]


def endpoint_key(ip: str, port: int) -> str:
    """``host:port`` as watch shows it: ``127.0.0.1:8080``, ``[::1]:8080``."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{port}"


@dataclass(frozen=True)
class Endpoint:
    """An ``--endpoint`` filter: an exact ``host:port`` or any host on a port (``*:port``)."""

    host: str  # as in endpoint_key's output, or "*"
    port: int

    def matches(self, key: str) -> bool:
        host, _, port = key.rpartition(":")
        return int(port) == self.port and self.host in ("*", host)


def parse_endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` (an IP address, ``[v6]`` in brackets, or ``*``); ValueError otherwise."""
    host, _, port = text.strip().rpartition(":")
    problem = f"{text!r} is not an endpoint; use IP:PORT, [IPv6]:PORT or *:PORT (no host names)"
    if not port.isdigit() or not 1 <= int(port) <= 65535 or not host:
        raise ValueError(problem)
    if host == "*":
        return Endpoint("*", int(port))
    try:
        key = endpoint_key(host.removeprefix("[").removesuffix("]"), int(port))
    except ValueError as exc:
        raise ValueError(problem) from exc
    return Endpoint(key.rpartition(":")[0], int(port))


class ProcessSockets:
    """The sampler of process ``pid``; construction checks it can be watched at all."""

    def __init__(
        self,
        pid: int,
        endpoints: Iterable[Endpoint] = (),
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pid = pid
        self.endpoints = tuple(endpoints)
        self._now = now
        try:
            self._process = psutil.Process(pid)
            self._read()
        except (psutil.NoSuchProcess, ProcessGone) as exc:
            raise UsageError(
                f"no process with pid {pid} (it may have ended); check the pid with `ps`"
            ) from exc
        except psutil.AccessDenied as exc:
            raise UsageError(
                f"cannot see the sockets of pid {pid}: access denied (it belongs to another "
                "user); run watch as that user"
            ) from exc

    def sample(self, t: float) -> Sample:
        """Count the sockets now; :class:`ProcessGone` when the process has ended."""
        try:
            connections, fds = self._read()
        except psutil.NoSuchProcess as exc:  # ZombieProcess included
            raise ProcessGone(f"pid {self.pid} exited") from exc
        except psutil.AccessDenied as exc:  # it ran a setuid program: gone for this watch
            raise ProcessGone(f"pid {self.pid} became unreadable (access denied)") from exc
        return Sample(
            t=t,
            time=self._now().isoformat(timespec="milliseconds"),
            fds=fds,
            endpoints=self._count(connections),
        )

    def _read(self) -> tuple[list[Any], int]:
        """The process's TCP sockets and fd count, psutil's errors as they come."""
        if self._process.status() == psutil.STATUS_ZOMBIE:  # ended, its parent not told yet
            raise ProcessGone(f"pid {self.pid} exited")
        return self._process.net_connections(kind="tcp"), self._process.num_fds()

    def _count(self, connections: Iterable[Any]) -> dict[str, Counts]:
        found: dict[str, Counts] = {}
        for conn in connections:
            if not conn.raddr:
                continue  # listening, or not connected yet
            key = endpoint_key(conn.raddr.ip, conn.raddr.port)
            if self.endpoints and not any(e.matches(key) for e in self.endpoints):
                continue
            state = {psutil.CONN_ESTABLISHED: "established", psutil.CONN_CLOSE_WAIT: "close_wait"}
            one = {state.get(conn.status, "other"): 1}
            found[key] = found.get(key, Counts()) + Counts(**one)
        return dict(sorted(found.items()))
