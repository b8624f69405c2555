"""Routing: the method and target of a request name an endpoint, or a 404/405 Reject."""

from __future__ import annotations

import pytest

from harness.mockserver.payload import Reject
from harness.mockserver.routing import route


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("POST", "/v1/chat/completions", "chat.completions"),
        ("POST", "/v1/responses?x=1", "responses"),
        ("GET", "/v1/models", "models"),
        ("GET", "/_harness/stats", "stats"),
        ("POST", "/_harness/reset", "reset"),
    ],
)
def test_route_known_paths(method: str, target: str, expected: str) -> None:
    assert route(method, target) == expected


def test_route_unknown_path_is_404_and_wrong_method_405() -> None:
    assert route("POST", "/v1/embeddings") == Reject(
        404, "Unknown request URL: POST /v1/embeddings.", code="unknown_url"
    )
    wrong = route("GET", "/v1/chat/completions")
    assert isinstance(wrong, Reject)
    assert (wrong.status, wrong.code) == (405, "method_not_allowed")
