"""Provider objects: a gateway's long-lived holder of one OpenAI client, and how it terminates.

Theory of operation. A chat-bot gateway wraps each configured LLM endpoint in a provider
object that builds one ``OpenAI``/``AsyncOpenAI`` client and keeps it for its whole life;
agent loops and plugins hold the provider and call through it. On a config reload (or a
provider update or delete) the gateway calls the provider's ``terminate()``, and whoever still
holds the provider keeps calling. What happens next is the provider's policy:

- ``keep``: terminate closes the client and keeps the reference (the bug): every later call
  raises "Cannot send a request, as the client has been closed";
- ``rebuild``: terminate closes the client; each call first checks ``is_closed()`` and builds
  a new client from the same kwargs when it is (the proposed fix): healthy for terminates
  between calls, but a call already in flight on the closed client fails;
- ``swap``: terminate retires the client atomically (the next call builds a new one) and the
  retired client is closed only once the calls in flight on it are done (the fix).

:class:`Lifecycle` is that decision logic without I/O: it says which client a call uses and
which clients are to be closed now. :class:`Provider` and :class:`AsyncProvider` are thin sync
and async shells that do the closing, and expose ``chat.completions.create`` and
``responses.create`` like a client, so the gateway simulator calls a provider as it calls a
client. The variants' ``terminate_openai_client(provider, *, shared)`` hook calls
``terminate()``; an adapter for a real gateway's provider class does the same with its own.
A stream counts as in flight until it is read to the end or closed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import openai

__all__ = [
    "AsyncProvider",
    "Lifecycle",
    "Policy",
    "Provider",
    "aterminate",
    "make_async",
    "make_sync",
    "terminate",
]

Policy = Literal["keep", "rebuild", "swap"]


class Lifecycle:
    """Which client each call uses and which clients to close, for one provider (thread-safe).

    ``build()`` makes a new client; ``closed(client)`` tells whether one is closed. Methods
    that return a list of clients leave closing them to the caller.
    """

    def __init__(
        self, policy: Policy, build: Callable[[], Any], closed: Callable[[Any], bool]
    ) -> None:
        self.policy = policy
        self._build = build
        self._closed = closed
        self._lock = threading.Lock()
        self._current: Any = build()
        self._inflight: Counter[int] = Counter()
        self._retired: dict[int, Any] = {}  # id -> client closed when its last call ends

    def acquire(self) -> Any:
        """The client a call starts on (built now if the policy says so); count it in flight."""
        with self._lock:
            if self._current is None or (self.policy == "rebuild" and self._closed(self._current)):
                self._current = self._build()
            self._inflight[id(self._current)] += 1
            return self._current

    def release(self, client: Any) -> list[Any]:
        """A call on ``client`` ended; the clients to close now (a retired one, last call)."""
        with self._lock:
            key = id(client)
            self._inflight[key] -= 1
            if self._inflight[key] > 0:
                return []
            del self._inflight[key]
            retired = self._retired.pop(key, None)
            return [] if retired is None else [retired]

    def terminate(self) -> list[Any]:
        """Terminate as the policy does; the clients to close now."""
        with self._lock:
            if self.policy != "swap":
                return [self._current]  # closed while still referenced (and maybe in use)
            old, self._current = self._current, None
            if old is None:
                return []
            if self._inflight[id(old)] > 0:
                self._retired[id(old)] = old
                return []
            return [old]

    def shutdown(self) -> list[Any]:
        """Every client still to close when the provider itself is closed."""
        with self._lock:
            clients = [c for c in (self._current, *self._retired.values()) if c is not None]
            self._current = None
            self._retired.clear()
            return clients


class _Resource:
    def __init__(self, create: Callable[..., Any]) -> None:
        self.create = create


class _Chat:
    def __init__(self, create: Callable[..., Any]) -> None:
        self.completions = _Resource(create)


class Provider:
    """A sync provider holding one ``OpenAI`` client built by ``build`` under ``policy``."""

    def __init__(self, build: Callable[[], Any], policy: Policy) -> None:
        self.lifecycle = Lifecycle(policy, build, lambda client: bool(client.is_closed()))
        self.chat = _Chat(lambda **kw: self._call("chat.completions", kw))
        self.responses = _Resource(lambda **kw: self._call("responses", kw))

    def terminate(self) -> None:
        """What the gateway calls on a reload, update or delete of this provider."""
        _close_all(self.lifecycle.terminate())

    def close(self) -> None:
        """Close every client the provider still holds (gateway shutdown)."""
        _close_all(self.lifecycle.shutdown())

    def _call(self, resource: str, kwargs: dict[str, Any]) -> Any:
        client = self.lifecycle.acquire()
        try:
            target = client.responses if resource == "responses" else client.chat.completions
            response = target.create(**kwargs)
        except BaseException:
            _close_all(self.lifecycle.release(client))
            raise
        if kwargs.get("stream"):
            return self._until_done(client, response)
        _close_all(self.lifecycle.release(client))
        return response

    def _until_done(self, client: Any, stream: Any) -> Iterator[Any]:
        try:
            yield from stream
        finally:
            stream.close()
            _close_all(self.lifecycle.release(client))


class AsyncProvider:
    """The async twin of :class:`Provider`, holding one ``AsyncOpenAI`` client."""

    def __init__(self, build: Callable[[], Any], policy: Policy) -> None:
        self.lifecycle = Lifecycle(policy, build, lambda client: bool(client.is_closed()))
        self.chat = _Chat(lambda **kw: self._call("chat.completions", kw))
        self.responses = _Resource(lambda **kw: self._call("responses", kw))

    async def terminate(self) -> None:
        """What the gateway awaits on a reload, update or delete of this provider."""
        await _aclose_all(self.lifecycle.terminate())

    async def close(self) -> None:
        """Close every client the provider still holds (gateway shutdown)."""
        await _aclose_all(self.lifecycle.shutdown())

    async def _call(self, resource: str, kwargs: dict[str, Any]) -> Any:
        client = self.lifecycle.acquire()
        try:
            target = client.responses if resource == "responses" else client.chat.completions
            response = await target.create(**kwargs)
        except BaseException:
            await _aclose_all(self.lifecycle.release(client))
            raise
        if kwargs.get("stream"):
            return self._until_done(client, response)
        await _aclose_all(self.lifecycle.release(client))
        return response

    async def _until_done(self, client: Any, stream: Any) -> AsyncIterator[Any]:
        try:
            async for event in stream:
                yield event
        finally:
            await stream.close()
            await _aclose_all(self.lifecycle.release(client))


def _close_all(clients: list[Any]) -> None:
    for client in clients:
        client.close()


async def _aclose_all(clients: list[Any]) -> None:
    for client in clients:
        await client.close()


# The variants' factory and hook bodies: a variant module defines ``create_openai_client``
# and ``terminate_openai_client`` itself (the hook is looked up beside the factory) and
# delegates here with its policy.


def make_sync(client_kwargs: dict[str, Any], *, shared: bool, policy: Policy) -> Any:
    """The provider (shared) or a plain ``OpenAI`` (per request), from a copy of the kwargs."""
    kwargs = dict(client_kwargs)
    if not shared:
        return openai.OpenAI(**kwargs)
    return Provider(lambda: openai.OpenAI(**kwargs), policy)


def make_async(client_kwargs: dict[str, Any], *, shared: bool, policy: Policy) -> Any:
    """The provider (shared) or a plain ``AsyncOpenAI`` (per request), from a copy."""
    kwargs = dict(client_kwargs)
    if not shared:
        return openai.AsyncOpenAI(**kwargs)
    return AsyncProvider(lambda: openai.AsyncOpenAI(**kwargs), policy)


def terminate(client: Any) -> None:
    """Terminate a provider (its policy decides what closes); close a plain client."""
    if isinstance(client, Provider):
        client.terminate()
    else:
        client.close()


async def aterminate(client: Any) -> None:
    """:func:`terminate` for the async shells."""
    if isinstance(client, AsyncProvider):
        await client.terminate()
    else:
        await client.close()
