"""What the mock reads from an API request body, and the 400s it answers instead.

:func:`parse_api_request` never raises: every body (not JSON, nested as deep as the parser
allows, a number Python refuses to convert, a field of the wrong type) is either an
:class:`ApiRequest` or a 400 :class:`~.payload.Reject` worded as OpenAI words it, naming the
field in ``param``.

How a body is checked, in one pass and only where it matters: the mock reads seven top-level
fields (``_FIELD_TYPES``: model, stream, stream_options, messages, input, tools, tool_choice).
:func:`_check_shape` walks the body's own keys once and rejects the first of those whose JSON
type OpenAI would refuse, then the items of the arrays among them, then the few nested values
the mock reads (``stream_options.include_usage``, each tool's name, ``tool_choice``'s name).
Anything else in the body is ignored, as it does not change the answer. Only after that do
:func:`_forced_tool` and :func:`_count_words` read the body, so they may trust every type.
Token counts are a deterministic stand-in: words in every string of the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from harness.mockserver.payload import Reject
from harness.mockserver.routing import ApiEndpoint

__all__ = ["MODEL", "ApiRequest", "parse_api_request"]

MODEL: Final = "mock-model"  # the model a request that names none gets, and /v1/models lists


@dataclass(frozen=True)
class ApiRequest:
    """What the mock needs from an API request body."""

    endpoint: ApiEndpoint
    model: str = MODEL
    stream: bool = False
    include_usage: bool = False  # chat: stream_options.include_usage
    tool: str | None = None  # the function the reply must call; None: reply with text
    prompt_tokens: int = 1


def parse_api_request(endpoint: ApiEndpoint, body: bytes) -> ApiRequest | Reject:
    """Read the fields the mock honours; anything else in the body is ignored.

    Never raises: a body that is not JSON, nests deeper than the parser allows, holds a number
    Python refuses to convert, or gives a field the mock reads a type OpenAI does not accept is
    a 400 :class:`Reject` naming the field (``param``), as OpenAI answers.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        return Reject(400, f"{_UNPARSABLE}: it is nested too deeply.")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Reject(400, f"{_UNPARSABLE}: {exc}.")
    except ValueError:  # int() refuses numbers of more than sys.get_int_max_str_digits()
        return Reject(400, f"{_UNPARSABLE}: a number in it has too many digits.")
    if not isinstance(data, dict):
        return Reject(400, "The request body must be a JSON object.")
    wrong = _check_shape(endpoint, data)
    if wrong is not None:
        return wrong
    model = data.get("model")
    options = data.get("stream_options")
    return ApiRequest(
        endpoint=endpoint,
        model=model if model else MODEL,
        stream=data.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        tool=_forced_tool(endpoint, data.get("tools"), data.get("tool_choice")),
        prompt_tokens=max(1, _count_words(data.get("messages", data.get("input")))),
    )


_UNPARSABLE: Final = "We could not parse the JSON body of your request"
# The JSON types OpenAI accepts for each top-level field the mock reads (null: absent), and
# the Python types json.loads gives them (bool is not an int here: no field takes a number).
_FIELD_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "model": ("string",),
    "stream": ("boolean",),
    "stream_options": ("object",),
    "messages": ("array",),
    "input": ("string", "array"),
    "tools": ("array",),
    "tool_choice": ("string", "object"),
}
_JSON_TYPES: Final[Mapping[type, str]] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}
_PY_TYPES: Final = {
    name: tuple(t for t, kind in _JSON_TYPES.items() if kind in allowed)
    for name, allowed in _FIELD_TYPES.items()
}
_ITEM_TYPES: Final = {"messages": ("object",), "input": ("object", "string"), "tools": ("object",)}


def _check_shape(endpoint: str, data: Mapping[str, Any]) -> Reject | None:
    """The first field the mock reads whose JSON type is wrong, as OpenAI's 400; or None.

    Per request, so it walks the body's own keys once and checks only what is there."""
    for name, value in data.items():
        types = _PY_TYPES.get(name)
        if types is None or value is None:
            continue
        if type(value) not in types:
            return _invalid_type(name, value, _FIELD_TYPES[name])
        item_types = _ITEM_TYPES.get(name)
        if item_types is not None and type(value) is list:
            wrong = _check_items(name, value, item_types)
            if wrong is not None:
                return wrong
    options = data.get("stream_options")
    usage = options.get("include_usage") if options else None
    if usage is not None and type(usage) is not bool:
        return _invalid_type("stream_options.include_usage", usage, ("boolean",))
    # After the loop: _check_tools relies on the tools being objects.
    if data.get("tools"):
        wrong = _check_tools(endpoint, data["tools"])
        if wrong is not None:
            return wrong
    return _check_tool_choice(data["tool_choice"]) if "tool_choice" in data else None


def _check_items(name: str, items: list[Any], allowed: tuple[str, ...]) -> Reject | None:
    for number, item in enumerate(items):
        if type(item) is not dict and _json_type(item) not in allowed:
            return _invalid_type(f"{name}[{number}]", item, allowed)
    return None


def _check_tools(endpoint: str, tools: list[Any]) -> Reject | None:
    """Chat tools keep their name in ``function.name``, Responses tools in ``name``."""
    for number, tool in enumerate(tools):
        where = f"tools[{number}]"
        if endpoint == "chat.completions" and "function" in tool:
            function = tool["function"]
            if not isinstance(function, dict):
                return _invalid_type(f"{where}.function", function, ("object",))
            tool, where = function, f"{where}.function"
        name = tool.get("name")
        if name is not None and not isinstance(name, str):
            return _invalid_type(f"{where}.name", name, ("string",))
    return None


def _check_tool_choice(choice: Any) -> Reject | None:
    if not isinstance(choice, dict):
        return None
    function = choice.get("function")
    if function is not None and not isinstance(function, dict):
        return _invalid_type("tool_choice.function", function, ("object",))
    for where, owner in (("tool_choice", choice), ("tool_choice.function", function or {})):
        name = owner.get("name")
        if name is not None and not isinstance(name, str):
            return _invalid_type(f"{where}.name", name, ("string",))
    return None


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "unknown")


def _invalid_type(param: str, value: Any, allowed: tuple[str, ...]) -> Reject:
    expected = " or ".join(map(_a, allowed))
    return Reject(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_a(_json_type(value))}"
        " instead.",
        code="invalid_type",
        param=param,
    )


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _forced_tool(endpoint: str, tools: Any, choice: Any) -> str | None:
    """The tool a reply must call: the first one for ``"required"``, or the one named.

    Runs after :func:`_check_shape`: every dict and name here has the type it must have.
    """
    if not tools:
        return None
    if isinstance(choice, dict):  # {"type": "function", "name"| "function": {"name"}}
        named = choice.get("name") or (choice.get("function") or {}).get("name")
        return named if isinstance(named, str) else None
    if choice != "required":
        return None
    first = tools[0]
    name = (
        first.get("name") if endpoint == "responses" else (first.get("function") or {}).get("name")
    )
    return name if isinstance(name, str) else "tool"


def _count_words(value: Any) -> int:
    """A deterministic stand-in for token counting: words in every string in ``value``.

    Iterative: a body nested as deep as the JSON parser allows must not exhaust the stack.
    """
    words, stack = 0, [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)  # json.loads builds exactly these types
        if kind is str:
            words += len(item.split())
        elif kind is list:
            extend(item)
        elif kind is dict:
            extend(item.values())
    return words
