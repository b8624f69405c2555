"""Keep-alive, mutating, async: the #11070 regression on an async gateway (twin of
``keepalive-mutating``).

The factory injects one keep-alive ``AsyncClient`` into the CALLER'S dict in place, so every
later "fresh" AsyncOpenAI client wraps it: ``await client.close()`` on any request client
closes it for all, idle pooled sockets are shared, and the injected client lost the SDK's
connection limits.
"""

from __future__ import annotations

from typing import Any

import openai

from harness.variants._http import keepalive_client

__all__ = ["create_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
    """Inject a keep-alive async client into ``client_kwargs`` itself (the bug), then build."""
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = keepalive_client(sdk_defaults=False, asynchronous=True)
    return openai.AsyncOpenAI(**client_kwargs)
