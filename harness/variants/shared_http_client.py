"""Shared HTTP client: a tempting half-fix of #11070 that is still wrong.

The factory copies the kwargs (so a unit test asserting "kwargs are not mutated" passes) but
hands ONE module-level keep-alive HTTP client to every OpenAI client. The sharing the copy was
meant to remove is still there: a gateway that closes its request clients closes the shared
client after the first call (use-after-close), and one that does not shares a pool whose idle
sockets the server reaps. The client keeps the SDK's timeout and limits, so those are not
what this variant gets wrong.
"""

from __future__ import annotations

import threading
from typing import Any

import openai

from harness.variants._http import keepalive_client

__all__ = ["create_openai_client", "reset_shared_client"]

# The bug under study is exactly this module-level state; it lives as long as the process
# (a worker runs one session). Once closed it stays closed, as it would in the gateway.
_lock = threading.Lock()
_shared: list[Any] = []


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    """A copy of ``client_kwargs`` wrapping the one module-level HTTP client."""
    kwargs = dict(client_kwargs)
    if "http_client" not in kwargs:
        with _lock:
            if not _shared:
                _shared.append(keepalive_client(sdk_defaults=True))
            kwargs["http_client"] = _shared[0]
    return openai.OpenAI(**kwargs)


def reset_shared_client() -> None:
    """Close and forget the module-level client, as a process restart would (for tests)."""
    with _lock:
        for client in _shared:
            client.close()
        _shared.clear()
