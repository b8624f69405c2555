"""Provider swaps its client atomically and closes the old one when its calls are done: the fix.

``terminate()`` retires the provider's ``OpenAI`` in one step (the next call builds a new one
from the same kwargs) and closes the retired client only once the calls in flight on it have
ended, so neither later calls nor calls in flight fail. Healthy.

With ``shared=True`` the factory returns the provider (:mod:`harness.variants._provider`),
which the gateway holds and calls like a client; request clients (``shared=False``) are plain
``OpenAI`` clients, as in ``baseline``. ``terminate_openai_client`` is the gateway's terminate.
"""

from __future__ import annotations

from typing import Any

from harness.variants._provider import make_sync, terminate

__all__ = ["create_openai_client", "terminate_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> Any:
    """The provider (shared) or a plain ``OpenAI`` (per request), from a copy of the kwargs."""
    return make_sync(client_kwargs, shared=shared, policy="swap")


def terminate_openai_client(client: Any, *, shared: bool) -> None:
    """Terminate a provider (its policy decides what closes); close a plain client."""
    terminate(client)
