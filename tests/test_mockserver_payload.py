"""The answer values: OpenAI's error JSON, JSON payloads and a stream plan's frames."""

from __future__ import annotations

import json

from harness.mockserver.payload import Reject, StreamPlan, error_payload, json_payload


def test_error_payload_has_openai_shape_and_retry_after() -> None:
    payload = error_payload(
        Reject(429, "slow down", type="requests", code="rate_limit_exceeded"), retry_after_s=0.05
    )
    assert payload.status == 429
    assert payload.headers == (("content-type", "application/json"), ("retry-after", "0.05"))
    assert json.loads(payload.body) == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def test_error_payload_without_retry_after_has_only_the_content_type() -> None:
    payload = error_payload(Reject(404, "gone", code="unknown_url"))
    assert (payload.status, payload.headers) == (404, (("content-type", "application/json"),))
    assert json.loads(payload.body)["error"] == {
        "message": "gone",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }


def test_json_payload_is_compact_and_keeps_extra_headers_after_the_content_type() -> None:
    payload = json_payload(201, {"a": [1, "b"]}, (("x-extra", "1"),))
    assert payload.body == b'{"a":[1,"b"]}'
    assert payload.headers == (("content-type", "application/json"), ("x-extra", "1"))


def test_a_plans_frames_join_in_order() -> None:
    assert StreamPlan((b"h",), (b"c1", b"c2"), (b"t",)).joined() == b"hc1c2t"
