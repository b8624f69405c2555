"""Reading an API request body: the fields the mock honours, and a 400 for every bad body.

No sockets. Every body, however hostile, is an ApiRequest or a 400 naming the field; the
hostile bodies are shared with tests/test_mockserver_server.py, which sends them on a socket.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.mockserver.payload import Reject
from harness.mockserver.request import ApiRequest, parse_api_request

CHAT_TOOLS = [
    {"type": "function", "function": {"name": "lookup"}},
    {"type": "function", "function": {"name": "other"}},
]
RESPONSES_TOOLS = [{"type": "function", "name": "search", "parameters": {}}]


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_parse_rejects_a_body_that_is_not_json(body: bytes) -> None:
    parsed = parse_api_request("chat.completions", body)
    assert isinstance(parsed, Reject)
    assert parsed.status == 400
    assert parsed.message.startswith("We could not parse the JSON body of your request")


def test_parse_rejects_json_that_is_not_an_object() -> None:
    assert parse_api_request("responses", b"[1, 2]") == Reject(
        400, "The request body must be a JSON object."
    )


def test_parse_reads_model_stream_usage_and_word_count() -> None:
    body = _body(
        model="gpt-x",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello there world"}],
    )
    assert parse_api_request("chat.completions", body) == ApiRequest(
        "chat.completions",
        model="gpt-x",
        stream=True,
        include_usage=True,
        tool=None,
        prompt_tokens=4,
    )  # "user" + three words


def test_parse_defaults_for_a_bare_object() -> None:
    assert parse_api_request("responses", b"{}") == ApiRequest("responses")


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
    parsed = parse_api_request(endpoint, _body(tools=tools, tool_choice=choice))
    assert isinstance(parsed, ApiRequest)
    assert parsed.tool == expected


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
        parsed = parse_api_request(endpoint, body)
        if param is not None:
            assert isinstance(parsed, Reject), body[:80]
            assert (parsed.status, parsed.param, parsed.code) == (400, param, "invalid_type")
            assert parsed.message.startswith(f"Invalid type for '{param}': expected ")
        else:
            assert isinstance(parsed, ApiRequest) or parsed.status == 400, body[:80]


def test_wrong_type_message_has_openai_wording() -> None:
    assert parse_api_request("responses", _body(input=5)) == Reject(
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
    assert parse_api_request("chat.completions", body) == Reject(
        400, f"We could not parse the JSON body of your request: {message}"
    )
