"""Provider keeps its closed client: the bug of a chat-bot gateway's provider class, async
(twin of ``provider-keeps-closed``).

The provider builds one ``AsyncOpenAI`` for its whole life; ``terminate()`` (run on a config
reload, a provider update or delete) closes it without dropping the reference, so whoever
still holds the provider keeps sending through the closed client: "Cannot send a request, as
the client has been closed", every call, until restart. Buggy.

With ``shared=True`` the factory returns the provider (:mod:`harness.variants._provider`),
which the gateway holds and calls like a client; request clients (``shared=False``) are plain
``AsyncOpenAI`` clients, as in ``baseline``. ``terminate_openai_client`` is the gateway's terminate.
"""

from __future__ import annotations

from typing import Any

from harness.variants._provider import aterminate, make_async

__all__ = ["create_openai_client", "terminate_openai_client"]


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> Any:
    """The provider (shared) or a plain ``AsyncOpenAI`` (per request), from a copy."""
    return make_async(client_kwargs, shared=shared, policy="keep")


async def terminate_openai_client(client: Any, *, shared: bool) -> None:
    """Terminate a provider (its policy decides what closes); close a plain client."""
    await aterminate(client)
