"""OpenAI's bodies: chat.completions and Responses answers and SSE frames, no sockets.

Shapes are checked with the openai SDK's own pydantic models in strict validation mode
(``model_validate``), which is stricter than the SDK's lenient parsing of live replies.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from harness.mockserver.bodies import build_payload, build_stream, models_payload, split_text
from harness.mockserver.request import ApiRequest
from harness.scenario import Reply

# Payloads are validated with the installed SDK's own models.
pytestmark = pytest.mark.sdk

REPLY = Reply(text="pong", chunks=3)


def _frames_json(frames: tuple[bytes, ...]) -> list[Any]:
    out = []
    for frame in frames:
        assert frame.endswith(b"\n\n")
        data = frame.split(b"data: ", 1)[1].strip()
        out.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return out


@pytest.mark.parametrize(
    ("text", "chunks", "expected"),
    [
        ("pong", 3, ("po", "n", "g")),
        ("pong", 1, ("pong",)),
        ("ab", 4, ("a", "b", "", "")),
        ("", 2, ("", "")),
        ("abc", 0, ("abc",)),
    ],
)
def test_split_text(text: str, chunks: int, expected: tuple[str, ...]) -> None:
    assert split_text(text, chunks) == expected


def test_models_payload_validates() -> None:
    data = json.loads(models_payload().body)
    assert [Model.model_validate(m).id for m in data["data"]] == ["mock-model"]


def test_chat_payload_text_and_tool_call() -> None:
    text = build_payload(
        ApiRequest("chat.completions", prompt_tokens=2), REPLY, ident="t1", created=7
    )
    done = ChatCompletion.model_validate_json(text.body)
    assert (done.id, done.created, done.choices[0].message.content) == ("chatcmpl-t1", 7, "pong")
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (2, 3)
    tool = build_payload(
        ApiRequest("chat.completions", tool="lookup"), REPLY, ident="t2", created=7
    )
    call = ChatCompletion.model_validate_json(tool.body).choices[0]
    assert call.finish_reason == "tool_calls"
    assert call.message.tool_calls is not None
    assert [
        (c.id, c.function.name, c.function.arguments)  # type: ignore[union-attr]
        for c in call.message.tool_calls
    ] == [("call_t2", "lookup", "{}")]


def test_chat_stream_frames() -> None:
    plan = build_stream(ApiRequest("chat.completions", stream=True), REPLY, ident="s", created=1)
    assert (len(plan.head), len(plan.chunks), len(plan.tail)) == (1, 3, 2)
    *chunks, done = _frames_json(plan.head + plan.chunks + plan.tail)
    assert done == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert [p.choices[0].delta.content for p in parsed] == ["", "po", "n", "g", None]
    assert [p.choices[0].finish_reason for p in parsed] == [None, None, None, None, "stop"]
    assert all("usage" not in c for c in chunks)


def test_chat_stream_include_usage_adds_a_usage_chunk() -> None:
    plan = build_stream(
        ApiRequest("chat.completions", stream=True, include_usage=True, prompt_tokens=5),
        REPLY,
        ident="s",
        created=1,
    )
    *chunks, usage, done = _frames_json(plan.head + plan.chunks + plan.tail)
    assert [c["usage"] for c in chunks] == [None] * 5
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert done == "[DONE]"


def test_chat_stream_tool_call_frames() -> None:
    plan = build_stream(
        ApiRequest("chat.completions", stream=True, tool="lookup"),
        Reply(chunks=2),
        ident="s",
        created=1,
    )
    *chunks, _ = _frames_json(plan.head + plan.chunks + plan.tail)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    first = parsed[0].choices[0].delta.tool_calls
    assert first is not None and first[0].function is not None
    assert (first[0].id, first[0].function.name) == ("call_s", "lookup")
    pieces = [
        c.choices[0].delta.tool_calls[0].function.arguments  # type: ignore[index,union-attr]
        for c in parsed[1:3]
    ]
    assert "".join(piece or "" for piece in pieces) == "{}"
    assert parsed[-1].choices[0].finish_reason == "tool_calls"


TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_stream_event_sequence() -> None:
    plan = build_stream(ApiRequest("responses", stream=True), REPLY, ident="r", created=1)
    assert (len(plan.head), len(plan.chunks), len(plan.tail)) == (4, 3, 4)
    frames = plan.head + plan.chunks + plan.tail
    events = _frames_json(frames)
    assert [e["type"] for e in events] == TEXT_EVENTS
    assert [e["sequence_number"] for e in events] == list(range(11))
    assert [f.split(b"\n", 1)[0] for f in frames] == [f"event: {t}".encode() for t in TEXT_EVENTS]
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event)
    final = Response.model_validate(events[-1]["response"])
    assert (final.id, final.status, final.output_text) == ("resp_r", "completed", "pong")


def test_responses_payload_function_call() -> None:
    payload = build_payload(ApiRequest("responses", tool="search"), REPLY, ident="f", created=3)
    response = Response.model_validate_json(payload.body)
    item = response.output[0]
    assert item.type == "function_call"
    assert (item.name, item.call_id, item.arguments) == ("search", "call_f", "{}")


def test_responses_stream_function_call_events() -> None:
    plan = build_stream(
        ApiRequest("responses", stream=True, tool="search"), Reply(chunks=1), ident="f", created=1
    )
    events = _frames_json(plan.head + plan.chunks + plan.tail)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event)
