"""The one loopback test: traffic stays on this machine (ARCHITECTURE.md, Safety)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback IP address (127.0.0.0/8 or ::1).

    Names (``localhost``) are not resolved, so they are never loopback here: what a name
    resolves to can change between the check and the connect.
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
