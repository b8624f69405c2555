"""Keep-alive, mutating: the regression of hermes-agent #11070.

The factory injected a TCP-keep-alive ``http_client`` into the CALLER'S dict in place. The
gateway keeps that dict for its whole life, so the first call plants one HTTP client in it
and every later "fresh" per-request OpenAI client wraps that same client: closing any request
client closes it for all (use-after-close), idle pooled sockets are shared across requests
(stale pool, CLOSE_WAIT), and the injected client lost the SDK's connection limits
(``limits=`` beside an explicit transport is ignored).
"""

from __future__ import annotations

from typing import Any

import openai

from harness.variants._http import keepalive_client

__all__ = ["create_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    """Inject a keep-alive client into ``client_kwargs`` itself (the bug), then build."""
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = keepalive_client(sdk_defaults=False)
    return openai.OpenAI(**client_kwargs)
