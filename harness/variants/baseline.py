"""Baseline: the gateway before the keep-alive change.

No HTTP client is injected; every OpenAI client builds (and, when closed, closes) its own
pool with the SDK's defaults. Healthy.
"""

from __future__ import annotations

from typing import Any

import openai

__all__ = ["create_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    """``OpenAI(**client_kwargs)``; ``shared`` makes no difference here."""
    return openai.OpenAI(**client_kwargs)
