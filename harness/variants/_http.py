"""Keep-alive HTTP clients built from the HTTP stack the installed OpenAI SDK uses.

openai 1.x/2.x run on ``httpx``; openai 3.x runs on ``httpx2``/``httpcore2`` and still accepts
a plain ``httpx.Client``, but mixing one stack's config objects (``Timeout``, ``Limits``) into
the other's client raises ``TypeError`` on the first request. So the stack is read from the
SDK itself (the class ``openai.DefaultHttpxClient`` derives from), and the SDK's own defaults
(``openai._constants``) are always objects of that same stack.

"Keep-alive" here means TCP keep-alive probes on every pooled socket (``SO_KEEPALIVE`` plus
``TCP_KEEPIDLE``/``TCP_KEEPINTVL``/``TCP_KEEPCNT`` where the OS has them), set through the
transport's ``socket_options``, exactly as the gateway change under study did.
"""

from __future__ import annotations

import importlib
import socket
from types import ModuleType
from typing import Any, Final

import openai
from openai import _constants

__all__ = ["KEEPALIVE_SOCKET_OPTIONS", "keepalive_client", "sdk_stack"]

_STACKS: Final = ("httpx", "httpx2")


def _socket_options() -> tuple[tuple[int, int, int], ...]:
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    # Linux names; macOS has TCP_KEEPALIVE for the idle time and lacks TCP_KEEPIDLE.
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return tuple(options)


KEEPALIVE_SOCKET_OPTIONS: Final = _socket_options()


def sdk_stack() -> ModuleType:
    """The HTTP package (``httpx`` or ``httpx2``) the installed openai SDK is built on."""
    for base in type.mro(openai.DefaultHttpxClient):
        top = base.__module__.partition(".")[0]
        if top in _STACKS:
            return importlib.import_module(top)
    raise RuntimeError(  # an SDK this harness does not know; say which
        f"cannot tell the HTTP stack of openai {openai.__version__}: "
        f"DefaultHttpxClient derives from none of {', '.join(_STACKS)}"
    )


def keepalive_client(*, sdk_defaults: bool, asynchronous: bool = False) -> Any:
    """A new keep-alive ``Client`` of the SDK's stack (``AsyncClient`` with ``asynchronous``).

    ``sdk_defaults=True`` keeps what the SDK's own client would have: its timeout (600 s,
    5 s connect) and its connection limits, put on the transport because a client built with
    an explicit ``transport=`` ignores ``limits=``. ``sdk_defaults=False`` reproduces the
    regression: limits handed to the client (silently dropped, leaving the stack's
    100-connection pool) and the stack's default timeout.
    """
    stack = sdk_stack()
    make_transport = stack.AsyncHTTPTransport if asynchronous else stack.HTTPTransport
    make_client = stack.AsyncClient if asynchronous else stack.Client
    limits = _constants.DEFAULT_CONNECTION_LIMITS
    if sdk_defaults:
        transport = make_transport(limits=limits, socket_options=KEEPALIVE_SOCKET_OPTIONS)
        return make_client(
            transport=transport, timeout=_constants.DEFAULT_TIMEOUT, follow_redirects=True
        )
    transport = make_transport(socket_options=KEEPALIVE_SOCKET_OPTIONS)
    return make_client(transport=transport, limits=limits)
