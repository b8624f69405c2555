"""Shared HTTP client, async: the module-level half-fix on an async gateway (twin of
``shared-http-client``).

The factory copies the kwargs (a "kwargs are not mutated" test passes) but hands ONE
module-level keep-alive ``AsyncClient`` to every AsyncOpenAI client: the first
``await client.close()`` of a request client closes it for all, and a gateway that does not
close them shares one pool whose idle sockets the server reaps.
"""

from __future__ import annotations

import threading
from typing import Any

import openai

from harness.variants._http import keepalive_client

__all__ = ["create_openai_client", "reset_shared_client"]

# The module-level state is the bug; a worker runs one session, so it lives for one run.
_lock = threading.Lock()
_shared: list[Any] = []


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
    """A copy of ``client_kwargs`` wrapping the one module-level async HTTP client."""
    kwargs = dict(client_kwargs)
    if "http_client" not in kwargs:
        with _lock:
            if not _shared:
                _shared.append(keepalive_client(sdk_defaults=True, asynchronous=True))
            kwargs["http_client"] = _shared[0]
    return openai.AsyncOpenAI(**kwargs)


async def reset_shared_client() -> None:
    """Close and forget the module-level client, as a process restart would (for tests)."""
    with _lock:
        clients = list(_shared)
        _shared.clear()
    for client in clients:
        await client.aclose()
