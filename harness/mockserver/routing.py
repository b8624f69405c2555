"""Which endpoint a request's method and target name: the mock's whole URL space.

Three OpenAI endpoints and the harness's control path (``/_harness/*``: stats and reset,
never counted as API traffic). A path the mock does not serve is a 404 :class:`Reject`, a
known path with the wrong method a 405, both worded as OpenAI words them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from harness.mockserver.payload import Reject

__all__ = ["ApiEndpoint", "Endpoint", "route"]

ApiEndpoint = Literal["chat.completions", "responses"]  # the endpoints that take a body
Endpoint = Literal["chat.completions", "responses", "models", "stats", "reset"]
# path -> (method, endpoint)
_ROUTES: Final[Mapping[str, tuple[str, Endpoint]]] = {
    "/v1/chat/completions": ("POST", "chat.completions"),
    "/v1/responses": ("POST", "responses"),
    "/v1/models": ("GET", "models"),
    "/_harness/stats": ("GET", "stats"),
    "/_harness/reset": ("POST", "reset"),
}


def route(method: str, target: str) -> Endpoint | Reject:
    """The endpoint for ``method`` and request ``target`` (query string ignored)."""
    path = target.split("?", 1)[0]
    found = _ROUTES.get(path)
    if found is None:
        return Reject(404, f"Unknown request URL: {method} {path}.", code="unknown_url")
    want, endpoint = found
    if method != want:
        return Reject(
            405, f"Method {method} not allowed for {path}; use {want}.", code="method_not_allowed"
        )
    return endpoint
