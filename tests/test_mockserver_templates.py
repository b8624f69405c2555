"""The byte-template cache: answers after the first are byte replacements of a cached one.

The contract is that a template gives exactly the bytes the builders of bodies.py give for the
same call, in every shape; the cache is an optimisation nobody may notice.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.mockserver.bodies import build_payload, build_stream
from harness.mockserver.request import ApiRequest
from harness.mockserver.templates import template_for
from harness.scenario import Reply

SHAPES = [
    ApiRequest(endpoint, stream=stream, include_usage=usage, tool=tool, prompt_tokens=3)
    for endpoint in ("chat.completions", "responses")
    for stream in (False, True)
    for usage in (False, True)
    for tool in (None, "lookup")
]
SENTINEL_LOOKALIKES = ["7700000000000000007", "\x01ident\x01", "\\u0001ident\\u0001"]


@pytest.mark.parametrize("req", SHAPES, ids=repr)
@pytest.mark.parametrize("text", ["one two three", *SENTINEL_LOOKALIKES])
def test_every_shape_is_byte_for_byte_what_the_builders_give(req: ApiRequest, text: str) -> None:
    reply = Reply(text=text, chunks=3)
    template = template_for(req, reply)
    for ident, created in (("mock000001", 1700000001), ("mock000002", 1700000002)):
        plan = build_stream(req, reply, ident, created)
        assert template.payload(ident=ident, created=created) == build_payload(
            req, reply, ident, created
        )
        assert template.stream(ident=ident, created=created) == plan
        assert template.stream_bytes(ident=ident, created=created) == plan.joined()


def test_an_ident_json_must_escape_is_escaped_in_the_filled_answer() -> None:
    req, reply = ApiRequest("chat.completions"), Reply(text="pong")
    body = template_for(req, reply).payload(ident='a"b', created=5).body
    assert body == build_payload(req, reply, 'a"b', 5).body
    assert json.loads(body)["id"] == 'chatcmpl-a"b'


def test_one_template_per_pair() -> None:
    req, reply = ApiRequest("responses", stream=True), Reply(text="cached")
    assert template_for(req, reply) is template_for(ApiRequest("responses", stream=True), reply)
    assert template_for(req, reply) is not template_for(req, Reply(text="other"))


@pytest.mark.parametrize("endpoint", ["chat.completions", "responses"])
@pytest.mark.parametrize("tool", [None, "lookup"])
def test_cached_answers_carry_each_calls_ident_and_created(endpoint: Any, tool: Any) -> None:
    req = ApiRequest(endpoint, tool=tool, include_usage=True)
    reply = Reply(text="one two", chunks=2)
    first = template_for(req, reply).payload(ident="mock000001", created=11)
    second = template_for(req, reply).payload(ident="mock000002", created=22)
    assert first.body.replace(b"mock000001", b"mock000002").replace(b"11", b"22") == second.body
    created = "created" if endpoint == "chat.completions" else "created_at"
    assert json.loads(second.body)[created] == 22
    assert b"mock000001" not in second.body
    streams = []
    for ident, stamp in (("mock000003", 1700000033), ("mock000004", 1700000044)):
        plan = template_for(req, reply).stream(ident=ident, created=stamp)
        frames = b"".join((*plan.head, *plan.chunks, *plan.tail))
        assert template_for(req, reply).stream_bytes(ident=ident, created=stamp) == frames
        streams.append(frames)
    assert b"mock000003" in streams[0] and b"1700000033" in streams[0]
    renamed = streams[0].replace(b"mock000003", b"mock000004")
    assert renamed.replace(b"1700000033", b"1700000044") == streams[1]


@pytest.mark.parametrize(
    "text", ["7700000000000000007", "\x01ident\x01", "\\u0001ident\\u0001", "plain"]
)
def test_reply_text_that_looks_like_a_template_sentinel_is_sent_as_is(text: str) -> None:
    req = ApiRequest("chat.completions", stream=True)
    reply = Reply(text=text, chunks=1)
    done = json.loads(template_for(req, reply).payload(ident="m1", created=5).body)
    assert (done["id"], done["created"], done["choices"][0]["message"]["content"]) == (
        "chatcmpl-m1",
        5,
        text,
    )
    frames = template_for(req, reply).stream_bytes(ident="m1", created=5).split(b"\n\n")
    chunks = [json.loads(f[len(b"data: ") :]) for f in frames if f and f != b"data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert {(c["id"], c["created"]) for c in chunks} == {("chatcmpl-m1", 5)}
