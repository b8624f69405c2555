"""The sans-IO protocol core: routing, request parsing, payloads and SSE frames, no sockets.

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

from harness.mockserver import protocol
from harness.mockserver.protocol import ApiRequest, Reject
from harness.scenario import Reply

# Payloads are validated with the installed SDK's own models.
pytestmark = pytest.mark.sdk

REPLY = Reply(text="pong", chunks=3)
CHAT_TOOLS = [
    {"type": "function", "function": {"name": "lookup"}},
    {"type": "function", "function": {"name": "other"}},
]
RESPONSES_TOOLS = [{"type": "function", "name": "search", "parameters": {}}]


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _frames_json(frames: tuple[bytes, ...]) -> list[Any]:
    out = []
    for frame in frames:
        assert frame.endswith(b"\n\n")
        data = frame.split(b"data: ", 1)[1].strip()
        out.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return out


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
    assert protocol.route(method, target) == expected


def test_route_unknown_path_is_404_and_wrong_method_405() -> None:
    assert protocol.route("POST", "/v1/embeddings") == Reject(
        404, "Unknown request URL: POST /v1/embeddings.", code="unknown_url"
    )
    wrong = protocol.route("GET", "/v1/chat/completions")
    assert isinstance(wrong, Reject)
    assert (wrong.status, wrong.code) == (405, "method_not_allowed")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_parse_rejects_a_body_that_is_not_json(body: bytes) -> None:
    parsed = protocol.parse_api_request("chat.completions", body)
    assert isinstance(parsed, Reject)
    assert parsed.status == 400
    assert parsed.message.startswith("We could not parse the JSON body of your request")


def test_parse_rejects_json_that_is_not_an_object() -> None:
    assert protocol.parse_api_request("responses", b"[1, 2]") == Reject(
        400, "The request body must be a JSON object."
    )


def test_parse_reads_model_stream_usage_and_word_count() -> None:
    body = _body(
        model="gpt-x",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello there world"}],
    )
    assert protocol.parse_api_request("chat.completions", body) == ApiRequest(
        "chat.completions",
        model="gpt-x",
        stream=True,
        include_usage=True,
        tool=None,
        prompt_tokens=4,
    )  # "user" + three words


def test_parse_defaults_for_a_bare_object() -> None:
    assert protocol.parse_api_request("responses", b"{}") == ApiRequest("responses")


@pytest.mark.parametrize(
    ("endpoint", "tools", "choice", "expected"),
    [
        ("chat.completions", CHAT_TOOLS, "required", "lookup"),
        ("chat.completions", CHAT_TOOLS, "auto", None),
        ("chat.completions", CHAT_TOOLS, None, None),
        ("chat.completions", [], "required", None),
        (
            "chat.completions",
            CHAT_TOOLS,
            {"type": "function", "function": {"name": "other"}},
            "other",
        ),
        ("responses", RESPONSES_TOOLS, "required", "search"),
        ("responses", RESPONSES_TOOLS, {"type": "function", "name": "search"}, "search"),
    ],
)
def test_parse_forced_tool(
    endpoint: Any, tools: list[Any], choice: Any, expected: str | None
) -> None:
    parsed = protocol.parse_api_request(endpoint, _body(tools=tools, tool_choice=choice))
    assert isinstance(parsed, ApiRequest)
    assert parsed.tool == expected


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
    assert protocol.split_text(text, chunks) == expected


def test_error_payload_has_openai_shape_and_retry_after() -> None:
    payload = protocol.error_payload(
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


def test_models_payload_validates() -> None:
    data = json.loads(protocol.models_payload().body)
    assert [Model.model_validate(m).id for m in data["data"]] == ["mock-model"]


def test_chat_payload_text_and_tool_call() -> None:
    text = protocol.api_payload(
        ApiRequest("chat.completions", prompt_tokens=2), REPLY, ident="t1", created=7
    )
    done = ChatCompletion.model_validate_json(text.body)
    assert (done.id, done.created, done.choices[0].message.content) == ("chatcmpl-t1", 7, "pong")
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (2, 3)
    tool = protocol.api_payload(
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
    plan = protocol.api_stream(
        ApiRequest("chat.completions", stream=True), REPLY, ident="s", created=1
    )
    assert (len(plan.head), len(plan.chunks), len(plan.tail)) == (1, 3, 2)
    *chunks, done = _frames_json(plan.head + plan.chunks + plan.tail)
    assert done == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert [p.choices[0].delta.content for p in parsed] == ["", "po", "n", "g", None]
    assert [p.choices[0].finish_reason for p in parsed] == [None, None, None, None, "stop"]
    assert all("usage" not in c for c in chunks)


def test_chat_stream_include_usage_adds_a_usage_chunk() -> None:
    plan = protocol.api_stream(
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
    plan = protocol.api_stream(
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
    plan = protocol.api_stream(ApiRequest("responses", stream=True), REPLY, ident="r", created=1)
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
    payload = protocol.api_payload(
        ApiRequest("responses", tool="search"), REPLY, ident="f", created=3
    )
    response = Response.model_validate_json(payload.body)
    item = response.output[0]
    assert item.type == "function_call"
    assert (item.name, item.call_id, item.arguments) == ("search", "call_f", "{}")


def test_responses_stream_function_call_events() -> None:
    plan = protocol.api_stream(
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


# --- templates: answers after the first are byte replacements of a cached one ----------------


@pytest.mark.parametrize("endpoint", ["chat.completions", "responses"])
@pytest.mark.parametrize("tool", [None, "lookup"])
def test_cached_answers_carry_each_calls_ident_and_created(endpoint: Any, tool: Any) -> None:
    req = ApiRequest(endpoint, tool=tool, include_usage=True)
    reply = Reply(text="one two", chunks=2)
    first = protocol.api_payload(req, reply, ident="mock000001", created=11)
    second = protocol.api_payload(req, reply, ident="mock000002", created=22)
    assert first.body.replace(b"mock000001", b"mock000002").replace(b"11", b"22") == second.body
    created = "created" if endpoint == "chat.completions" else "created_at"
    assert json.loads(second.body)[created] == 22
    assert b"mock000001" not in second.body
    streams = []
    for ident, stamp in (("mock000003", 1700000033), ("mock000004", 1700000044)):
        plan = protocol.api_stream(req, reply, ident=ident, created=stamp)
        frames = b"".join((*plan.head, *plan.chunks, *plan.tail))
        assert protocol.api_stream_bytes(req, reply, ident=ident, created=stamp) == frames
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
    done = json.loads(protocol.api_payload(req, reply, ident="m1", created=5).body)
    assert (done["id"], done["created"], done["choices"][0]["message"]["content"]) == (
        "chatcmpl-m1",
        5,
        text,
    )
    frames = protocol.api_stream_bytes(req, reply, ident="m1", created=5).split(b"\n\n")
    chunks = [json.loads(f[len(b"data: ") :]) for f in frames if f and f != b"data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert {(c["id"], c["created"]) for c in chunks} == {("chatcmpl-m1", 5)}


# --- hostile bodies: every one is answered, never raised ----------------------------------------

WRONG_VALUES: dict[str, Any] = {
    "string": "x",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "array": [1],
    "object": {"a": 1},
}
# field -> the JSON types OpenAI accepts for it (null always means "absent")
FIELD_TYPES = {
    "model": {"string"},
    "stream": {"boolean"},
    "stream_options": {"object"},
    "messages": {"array"},
    "input": {"string", "array"},
    "tools": {"array"},
    "tool_choice": {"string", "object"},
}


def hostile_bodies(endpoint: str, seed: int, count: int) -> list[tuple[bytes, str | None]]:
    """``count`` bodies built from a valid request, each with the ``param`` a 400 must name
    (None: any answer but a crash). Deterministic for a seed."""
    import random

    rng = random.Random(seed)
    nested = ["messages", "input", "tools", "tool_choice", "stream_options", "metadata"]
    shapes: list[tuple[bytes, str | None]] = []
    for field, allowed in FIELD_TYPES.items():
        for kind, value in WRONG_VALUES.items():
            if kind not in allowed and not (kind == "integer" and "number" in allowed):
                shapes.append((_body(**{field: value}), field))
    shapes += [
        (_body(tools=[{"function": 3}], tool_choice="required"), "tools[0].function")
        if endpoint == "chat.completions"
        else (_body(tools=[{"name": 3}], tool_choice="required"), "tools[0].name"),
        (_body(tools=[{"function": {"name": 3}}]), "tools[0].function.name")
        if endpoint == "chat.completions"
        else (_body(tools=[{"name": {}}]), "tools[0].name"),
        (_body(tools=["lookup"], tool_choice="required"), "tools[0]"),
        (_body(tool_choice={"function": "lookup"}, tools=CHAT_TOOLS), "tool_choice.function"),
        (_body(tool_choice={"name": ["x"]}, tools=CHAT_TOOLS), "tool_choice.name"),
        (_body(messages=["hi"]), "messages[0]"),
        (_body(input=[3]), "input[0]"),
        (_body(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (b'{"model": "m", "n": ' + b"9" * 5000 + b"}", None),
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    ]
    leaves = [b"1e999", b"-" + b"1" * 4000, b'"\\u0000"', b"null", b"true", b'"a b c"']
    while len(shapes) < count:
        opens, closes = [], []
        for _ in range(rng.choice([1, 10, 500, 5000])):  # built as text: json.dumps recurses
            is_list = rng.random() < 0.5
            opens.append(b"[" if is_list else b'{"k":')
            closes.append(b"]" if is_list else b"}")
        inner = b"".join(opens) + rng.choice(leaves) + b"".join(reversed(closes))
        shapes.append((b'{"%s":%s}' % (rng.choice(nested).encode(), inner), None))
    return shapes[:count]


@pytest.mark.parametrize("endpoint", ["chat.completions", "responses"])
def test_every_hostile_body_gets_a_400_naming_the_field_or_an_answer(endpoint: Any) -> None:
    for body, param in hostile_bodies(endpoint, seed=10, count=400):
        parsed = protocol.parse_api_request(endpoint, body)
        if param is not None:
            assert isinstance(parsed, Reject), body[:80]
            assert (parsed.status, parsed.param, parsed.code) == (400, param, "invalid_type")
            assert parsed.message.startswith(f"Invalid type for '{param}': expected ")
        else:
            assert isinstance(parsed, ApiRequest) or parsed.status == 400, body[:80]


def test_wrong_type_message_has_openai_wording() -> None:
    assert protocol.parse_api_request("responses", _body(input=5)) == Reject(
        400,
        "Invalid type for 'input': expected a string or an array, but got an integer instead.",
        code="invalid_type",
        param="input",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "it is nested too deeply."),
        (b'{"n": ' + b"9" * 5000 + b"}", "a number in it has too many digits."),
    ],
)
def test_unparsable_json_structures_are_400(body: bytes, message: str) -> None:
    assert protocol.parse_api_request("chat.completions", body) == Reject(
        400, f"We could not parse the JSON body of your request: {message}"
    )
