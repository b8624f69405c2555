"""Provider rebuilds its client when it finds it closed before a call: the proposed fix.

``terminate()`` still closes the provider's ``OpenAI`` at once, but every call first checks
``is_closed()`` and builds a new client from the same kwargs when it is. Healthy when the
terminate lands between calls (a reload between turns); a call already in flight on the
client when the terminate lands still fails. Buggy.

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
    return make_sync(client_kwargs, shared=shared, policy="rebuild")


def terminate_openai_client(client: Any, *, shared: bool) -> None:
    """Terminate a provider (its policy decides what closes); close a plain client."""
    terminate(client)
