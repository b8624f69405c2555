"""Containment: no code in a worker reaches off loopback (ARCHITECTURE.md, Safety).

Theory of operation
-------------------
CPython raises an audit event before each socket operation that can send a packet or a
name lookup (``socket.connect`` and ``connect_ex``, ``sendto``, ``sendmsg``,
``getaddrinfo``, ``gethostbyname`` and ``_ex``, ``gethostbyaddr``, ``getnameinfo``) and
before it creates a socket (``socket.__new__``). :func:`install` adds an audit hook
(``sys.addaudithook``: it cannot be removed, so only a worker installs it) that reads each
event's destination with the pure :func:`refused_destination`. A destination off loopback is
reported to the caller's ``on_refusal`` and the call raises :class:`NetworkRefused`; raised
from the hook, the exception aborts the operation before the system call, so no byte and no
DNS query leaves the process. The asyncio paths end in the same calls: ``loop.getaddrinfo``
runs ``socket.getaddrinfo`` in an executor thread and ``sock_connect`` calls
``socket.connect``.

Loopback is 127.0.0.0/8, ::1 (and ::ffff:127.0.0.0/104) and the name ``localhost``; every
other name is refused unresolved, since what it resolves to is only known after the query.
Unix and netlink sockets never leave the machine; socket families that can (packet, CAN,
Bluetooth, vsock, ...) are refused when created.

Outside it: a process the factory starts with exec (its interpreter has no hook), and code
that makes system calls without the ``socket`` module (ctypes, C extensions' own sockets).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

__all__ = [
    "LOOPBACK_NO_PROXY",
    "NetworkRefused",
    "Refusal",
    "action",
    "install",
    "is_loopback_host",
    "no_proxy",
    "origin",
    "refused_destination",
]

LOOPBACK_NO_PROXY: Final = ("127.0.0.1", "localhost", "::1")
_ADDRESS_EVENTS: Final = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_NAME_EVENTS: Final = frozenset(
    {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"}
)
_LOCAL_FAMILIES: Final = frozenset(
    f for f in (getattr(socket, "AF_UNIX", None), getattr(socket, "AF_NETLINK", None)) if f
)
_IP_FAMILIES: Final = frozenset({socket.AF_INET, socket.AF_INET6})
# Folders whose frames are never "the code under test" (each ends with a separator).
_LIBRARY_DIRS: Final = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) + "/" for key in ("stdlib", "platstdlib")}
    | {str(Path(__file__).resolve().parent) + "/"}  # this harness
)


class NetworkRefused(PermissionError):
    """A socket operation toward a destination off loopback, refused before it was made."""


@dataclass(frozen=True)
class Refusal:
    """One refused operation: the audit ``event``, what it was (``action``: "a connection
    to", "a name lookup of", ...), its ``destination`` (``host:port``, a name, or a socket
    family) and ``origin``, the innermost ``file:line`` of the code under test on the calling
    thread's stack (None when only library code is on it, e.g. an SDK call made by the
    gateway, or a name lookup in asyncio's executor thread)."""

    event: str
    action: str
    destination: str
    origin: str | None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is a loopback address or the name ``localhost`` (never resolved)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _host_port(host: Any, port: Any = None) -> str | None:
    """``host[:port]`` when ``host`` is off loopback, else None (``None`` host: no lookup)."""
    if host is None:
        return None
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    if is_loopback_host(text):
        return None
    shown = f"[{text}]" if ":" in text else text or "''"
    return shown if port in (None, 0, "") else f"{shown}:{port}"


def refused_destination(event: str, args: tuple[Any, ...]) -> str | None:
    """The destination an audit event aims at when it is off loopback, else None.

    ``args`` are the event's arguments as CPython passes them (the socket first for
    ``connect``/``sendto``/``sendmsg``/``__new__``).
    """
    if event in _ADDRESS_EVENTS:
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if address is None or family in _LOCAL_FAMILIES:
            return None  # sendmsg on a connected socket; a Unix or netlink peer
        if family in _IP_FAMILIES and isinstance(address, tuple):
            return _host_port(address[0], address[1])
        return f"{address!r} (socket family {family!r})"
    if event == "socket.getaddrinfo":
        return _host_port(args[0], args[1])
    if event in _NAME_EVENTS:
        return _host_port(args[0])
    if event == "socket.getnameinfo":
        return _host_port(*args[0][:2])
    if event == "socket.__new__":
        family = args[1]
        if family in _LOCAL_FAMILIES or family in _IP_FAMILIES or family == -1:
            return None  # -1: socket(fileno=...) reads the family from the descriptor
        return f"a socket of family {_family_name(family)}"
    return None


def action(event: str, args: tuple[Any, ...]) -> str:
    """What the event does, for a message: "a connection to", "a packet to", "a name lookup
    of", "a reverse lookup of" or "creating" (a socket of a family that leaves the host)."""
    if event in ("socket.getaddrinfo", "socket.gethostbyname"):
        host = args[0].decode("ascii", "replace") if isinstance(args[0], bytes) else args[0]
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            return "a name lookup of"
        return "a connection to"  # an address: resolved without a query, then connected
    if event in ("socket.gethostbyaddr", "socket.getnameinfo"):
        return "a reverse lookup of"
    if event == "socket.__new__":
        return "creating"
    if event in ("socket.sendto", "socket.sendmsg"):
        return "a packet to"
    return "a connection to"


def _family_name(family: int) -> str:
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return str(family)


def origin(frame: FrameType | None, root: Path) -> str | None:
    """The innermost frame of the code under test in ``frame``'s stack, as ``file:line``
    (relative to ``root`` when under it): the first one outside the standard library,
    installed packages (site-packages: the SDK, httpx) and this harness; None if none is."""
    while frame is not None:
        name = frame.f_code.co_filename
        if _is_user_file(name):
            path = Path(name).resolve()
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            return f"{shown}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def _is_user_file(name: str) -> bool:
    if name.startswith("<"):
        return False  # <frozen ...>, <string>
    parts = Path(name).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not str(Path(name).resolve()).startswith(_LIBRARY_DIRS)


def install(on_refusal: Callable[[Refusal], None], *, root: Path) -> None:
    """From now on refuse, in this process, every socket operation off loopback.

    ``on_refusal`` is called with each :class:`Refusal` in the thread that attempted it
    (it may end the process); then the operation raises :class:`NetworkRefused`. The hook
    stays for the life of the process: call this only in a worker.
    """
    root = root.resolve()
    busy = threading.local()  # on_refusal's own work never re-enters the check

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not event.startswith("socket.") or getattr(busy, "on", False):
            return
        destination = refused_destination(event, args)
        if destination is None:
            return
        busy.on = True
        try:
            where = origin(sys._getframe(1), root)
            refusal = Refusal(event, action(event, args), destination, where)
            on_refusal(refusal)
        finally:
            busy.on = False
        raise NetworkRefused(f"{event} to {destination} refused: a worker reaches only loopback")

    sys.addaudithook(hook)


def no_proxy(current: str, extra: Iterable[str] = ()) -> str:
    """``current`` (a NO_PROXY value) with the loopback names and ``extra`` hosts added, so
    a proxy variable (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) never carries loopback traffic."""
    hosts = [h.strip() for h in current.split(",") if h.strip()]
    for host in (*LOOPBACK_NO_PROXY, *extra):
        if host not in hosts:
            hosts.append(host)
    return ",".join(hosts)
