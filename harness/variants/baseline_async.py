"""Baseline, async: the async gateway before the keep-alive change (twin of ``baseline``).

No HTTP client is injected; every AsyncOpenAI client builds (and, when closed, closes) its
own pool with the SDK's defaults. Healthy.
"""

from __future__ import annotations

from typing import Any

import openai

__all__ = ["create_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.AsyncOpenAI:
    """``AsyncOpenAI(**client_kwargs)``; ``shared`` makes no difference here."""
    return openai.AsyncOpenAI(**client_kwargs)
