"""Keep-alive, fixed: the repair of the #11070 regression.

The factory copies the kwargs and builds a fresh keep-alive HTTP client for every OpenAI
client, keeping the SDK's default timeout and connection limits (limits on the transport).
Each OpenAI client owns its HTTP client, so closing one closes nothing else. Healthy.
"""

from __future__ import annotations

from typing import Any

import openai

from harness.variants._http import keepalive_client

__all__ = ["create_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    """A copy of ``client_kwargs`` plus a new keep-alive client unless one was given."""
    kwargs = dict(client_kwargs)
    if "http_client" not in kwargs:
        kwargs["http_client"] = keepalive_client(sdk_defaults=True)
    return openai.OpenAI(**kwargs)
