"""Keep-alive, fixed, async: the repair of #11070 on an async gateway (twin of
``keepalive-fixed``).

The factory copies the kwargs and builds a fresh keep-alive ``AsyncClient`` for every
AsyncOpenAI client, keeping the SDK's default timeout and connection limits. Healthy.
"""

from __future__ import annotations

from typing import Any

import openai

from harness.variants._http import keepalive_client

__all__ = ["create_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
    """A copy of ``client_kwargs`` plus a new keep-alive async client unless one was given."""
    kwargs = dict(client_kwargs)
    if "http_client" not in kwargs:
        kwargs["http_client"] = keepalive_client(sdk_defaults=True, asynchronous=True)
    return openai.AsyncOpenAI(**kwargs)
