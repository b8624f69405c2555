"""The one loopback test: traffic stays on this machine (ARCHITECTURE.md, Safety)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback IP address (127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into
    IPv6 as ``::ffff:127.0.0.1``, which Python before 3.13 does not call loopback).

    Names (``localhost``) are not resolved, so they are never loopback here: what a name
    resolves to can change between the check and the connect.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
