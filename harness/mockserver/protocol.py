"""Sans-IO core of the mock server: which bytes answer which request.

Nothing here touches a socket or a clock. :func:`route` maps a method and target to an
endpoint, :func:`parse_api_request` reads the JSON body into an :class:`ApiRequest`, and the
builders return either a complete :class:`Payload` (status, headers, body) or a
:class:`StreamPlan` of Server-Sent-Event frames. A request the server refuses is a
:class:`Reject` value (never an exception): the socket layer turns it into OpenAI's error JSON.

A :class:`StreamPlan` has three parts so the fault layer can cut it without knowing OpenAI's
formats: ``head`` (events before the first text delta), ``chunks`` (one frame per delta; what
``truncate_stream.after_chunks`` and ``chunk_delay_ms`` count) and ``tail`` (the final events
and ``[DONE]``, never sent when a stream is truncated).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from harness.scenario import Reply

__all__ = [
    "ApiRequest",
    "Endpoint",
    "Payload",
    "Reject",
    "StreamPlan",
    "api_payload",
    "api_stream",
    "api_stream_bytes",
    "error_payload",
    "json_payload",
    "models_payload",
    "parse_api_request",
    "route",
    "split_text",
]

Endpoint = Literal["chat.completions", "responses", "models", "stats", "reset"]
MODEL: Final = "mock-model"
ARGUMENTS: Final = "{}"  # arguments of every tool call the mock makes
# method, path -> endpoint; /_harness/* is the control path, never counted as API traffic
_ROUTES: Final[Mapping[str, tuple[str, Endpoint]]] = {
    "/v1/chat/completions": ("POST", "chat.completions"),
    "/v1/responses": ("POST", "responses"),
    "/v1/models": ("GET", "models"),
    "/_harness/stats": ("GET", "stats"),
    "/_harness/reset": ("POST", "reset"),
}
JSON_HEADERS: Final = (("content-type", "application/json"),)
SSE_HEADERS: Final = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))


@dataclass(frozen=True)
class Reject:
    """A request answered with an error: OpenAI's ``{"error": {...}}`` shape."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None


@dataclass(frozen=True)
class ApiRequest:
    """What the mock needs from an API request body."""

    endpoint: Literal["chat.completions", "responses"]
    model: str = MODEL
    stream: bool = False
    include_usage: bool = False  # chat: stream_options.include_usage
    tool: str | None = None  # the function the reply must call; None: reply with text
    prompt_tokens: int = 1


@dataclass(frozen=True)
class Payload:
    """A complete response: status, headers (without content-length) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class StreamPlan:
    """An SSE response as frames: ``head``, one frame per delta in ``chunks``, then ``tail``."""

    head: tuple[bytes, ...]
    chunks: tuple[bytes, ...]
    tail: tuple[bytes, ...]


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


def parse_api_request(
    endpoint: Literal["chat.completions", "responses"], body: bytes
) -> ApiRequest | Reject:
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


def split_text(text: str, chunks: int) -> tuple[str, ...]:
    """``text`` in ``chunks`` consecutive pieces whose lengths differ by at most one."""
    count = max(1, chunks)
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return tuple(pieces)


def json_payload(status: int, data: Any, headers: Sequence[tuple[str, str]] = ()) -> Payload:
    return Payload(status, (*JSON_HEADERS, *headers), _dumps(data))


def error_payload(reject: Reject, *, retry_after_s: float | None = None) -> Payload:
    """OpenAI's error JSON; ``retry-after`` (seconds, may be fractional) when given."""
    error = {
        "message": reject.message,
        "type": reject.type,
        "param": reject.param,
        "code": reject.code,
    }
    headers = () if retry_after_s is None else (("retry-after", f"{retry_after_s:g}"),)
    return json_payload(reject.status, {"error": error}, headers)


def models_payload() -> Payload:
    model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "harness"}
    return json_payload(200, {"object": "list", "data": [model]})


def api_payload(req: ApiRequest, reply: Reply, *, ident: str, created: int) -> Payload:
    """The non-streamed answer to ``req``."""
    template = _payload_template(req, reply)
    if template is None:
        return _build_payload(req, reply, ident, created)
    fill = _filler(ident, created)
    return Payload(template.status, template.headers, fill(template.body))


def api_stream(req: ApiRequest, reply: Reply, *, ident: str, created: int) -> StreamPlan:
    """The streamed answer to ``req`` as SSE frames."""
    template = _stream_template(req, reply)
    if template is None:
        return _build_stream(req, reply, ident, created)
    fill = _filler(ident, created)
    return StreamPlan(
        tuple(map(fill, template.head)),
        tuple(map(fill, template.chunks)),
        tuple(map(fill, template.tail)),
    )


def api_stream_bytes(req: ApiRequest, reply: Reply, *, ident: str, created: int) -> bytes:
    """The frames of :func:`api_stream` joined: the whole stream when nothing pauses it."""
    template = _joined_template(req, reply)
    if template is None:
        plan = _build_stream(req, reply, ident, created)
        return b"".join((*plan.head, *plan.chunks, *plan.tail))
    return _filler(ident, created)(template)


# --- templates -------------------------------------------------------------------------------
# Building an answer means building and encoding one dict per frame: about 85 us for a
# 16-chunk stream, more than the rest of a request. Only ``ident`` and ``created`` change from
# call to call, so each (request, reply) pair is built once with sentinel values and later
# answers are byte replacements. The sentinels cannot collide with anything else in a
# template: the only free text there comes from the reply, the model and the tool name, and
# :func:`_cacheable` sends any request that contains a sentinel down the uncached path.
_IDENT_SENTINEL: Final = "\x01ident\x01"  # JSON-encodes to an escape no real ident has
_CREATED_SENTINEL: Final = 7_700_000_000_000_000_007
_IDENT_BYTES: Final = json.dumps(_IDENT_SENTINEL)[1:-1].encode()
_CREATED_BYTES: Final = str(_CREATED_SENTINEL).encode()


def _cacheable(req: ApiRequest, reply: Reply) -> bool:
    free_text = (reply.text, req.model, req.tool or "")
    return not any(
        _IDENT_SENTINEL in text or _IDENT_BYTES.decode() in text or _CREATED_BYTES.decode() in text
        for text in free_text
    )


def _filler(ident: str, created: int) -> Callable[[bytes], bytes]:
    # The server's idents are ASCII letters and digits, which JSON leaves as they are.
    ident_bytes = ident.encode() if ident.isascii() and ident.isalnum() else _dumps(ident)[1:-1]
    created_bytes = str(created).encode()

    def fill(template: bytes) -> bytes:
        return template.replace(_IDENT_BYTES, ident_bytes).replace(_CREATED_BYTES, created_bytes)

    return fill


# None: the pair is not cacheable; the caller builds the answer directly.
@functools.lru_cache(maxsize=256)
def _payload_template(req: ApiRequest, reply: Reply) -> Payload | None:
    if not _cacheable(req, reply):
        return None
    return _build_payload(req, reply, _IDENT_SENTINEL, _CREATED_SENTINEL)


@functools.lru_cache(maxsize=256)
def _stream_template(req: ApiRequest, reply: Reply) -> StreamPlan | None:
    if not _cacheable(req, reply):
        return None
    return _build_stream(req, reply, _IDENT_SENTINEL, _CREATED_SENTINEL)


@functools.lru_cache(maxsize=256)
def _joined_template(req: ApiRequest, reply: Reply) -> bytes | None:
    plan = _stream_template(req, reply)
    return None if plan is None else b"".join((*plan.head, *plan.chunks, *plan.tail))


def _build_payload(req: ApiRequest, reply: Reply, ident: str, created: int) -> Payload:
    build = _chat_complete if req.endpoint == "chat.completions" else _responses_complete
    return json_payload(200, build(req, reply, ident, created))


def _build_stream(req: ApiRequest, reply: Reply, ident: str, created: int) -> StreamPlan:
    if req.endpoint == "chat.completions":
        head, chunks, tail = _chat_stream(req, reply, ident, created)
        return StreamPlan(
            tuple(map(_data, head)),
            tuple(map(_data, chunks)),
            (*map(_data, tail), b"data: [DONE]\n\n"),
        )
    head, chunks, tail = _responses_stream(req, reply, ident, created)
    return StreamPlan(
        tuple(map(_event, head)), tuple(map(_event, chunks)), tuple(map(_event, tail))
    )


def _data(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


def _event(payload: Mapping[str, Any]) -> bytes:
    # Responses events carry an `event:` line too, as OpenAI sends them.
    return f"event: {payload['type']}\n".encode() + _data(payload)


# One shared encoder: json.dumps() with options builds a new one per call, which shows in
# the profile of a stream (one call per frame).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def _dumps(data: Any) -> bytes:
    return _ENCODER.encode(data).encode()


# --- chat.completions ----------------------------------------------------------------------
# ``ident`` is a unique suffix the caller picks per call; every id in one answer derives from it.

_Frames = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _completion_tokens(reply: Reply) -> int:
    return max(1, reply.chunks)


def _chat_usage(req: ApiRequest, reply: Reply) -> dict[str, int]:
    done = _completion_tokens(reply)
    return {
        "prompt_tokens": req.prompt_tokens,
        "completion_tokens": done,
        "total_tokens": req.prompt_tokens + done,
    }


def _tool_call(req: ApiRequest, ident: str, arguments: str) -> dict[str, Any]:
    return {
        "id": f"call_{ident}",
        "type": "function",
        "function": {"name": req.tool, "arguments": arguments},
    }


def _chat_complete(req: ApiRequest, reply: Reply, ident: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if req.tool is not None:
        message.update(content=None, tool_calls=[_tool_call(req, ident, ARGUMENTS)])
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "stop" if req.tool is None else "tool_calls",
    }
    return {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "choices": [choice],
        "usage": _chat_usage(req, reply),
    }


def _chat_stream(req: ApiRequest, reply: Reply, ident: str, created: int) -> _Frames:
    base = {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": req.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        # With include_usage, OpenAI sends `usage: null` on every chunk but the last.
        return {**base, "choices": [choice], **({"usage": None} if req.include_usage else {})}

    if req.tool is None:
        head = [chunk({"role": "assistant", "content": ""})]
        chunks = [chunk({"content": piece}) for piece in split_text(reply.text, reply.chunks)]
    else:
        call = {"index": 0, **_tool_call(req, ident, "")}
        head = [chunk({"role": "assistant", "content": None, "tool_calls": [call]})]
        chunks = [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in split_text(ARGUMENTS, reply.chunks)
        ]
    tail = [chunk({}, "stop" if req.tool is None else "tool_calls")]
    if req.include_usage:
        tail.append({**base, "choices": [], "usage": _chat_usage(req, reply)})
    return head, chunks, tail


# --- responses -----------------------------------------------------------------------------


def _responses_usage(req: ApiRequest, reply: Reply) -> dict[str, Any]:
    done = _completion_tokens(reply)
    return {
        "input_tokens": req.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": done,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": req.prompt_tokens + done,
    }


def _response(
    req: ApiRequest, reply: Reply, ident: str, created: int, output: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """A Response object; ``output=None`` means still in progress (empty output, no usage)."""
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": created,
        "model": req.model,
        "status": "in_progress" if output is None else "completed",
        "output": output or [],
        "parallel_tool_calls": True,
        "tool_choice": "auto" if req.tool is None else "required",
        "tools": [],
        "usage": None if output is None else _responses_usage(req, reply),
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_item(req: ApiRequest, reply: Reply, ident: str, *, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if req.tool is not None:
        return {
            "type": "function_call",
            "id": f"fc_{ident}",
            "call_id": f"call_{ident}",
            "name": req.tool,
            "arguments": ARGUMENTS if done else "",
            "status": status,
        }
    return {
        "type": "message",
        "id": f"msg_{ident}",
        "role": "assistant",
        "status": status,
        "content": [_text_part(reply.text)] if done else [],
    }


def _responses_complete(req: ApiRequest, reply: Reply, ident: str, created: int) -> dict[str, Any]:
    return _response(req, reply, ident, created, [_output_item(req, reply, ident, done=True)])


def _responses_stream(req: ApiRequest, reply: Reply, ident: str, created: int) -> _Frames:
    pending = _response(req, reply, ident, created, None)
    item = _output_item(req, reply, ident, done=True)
    where = {"item_id": item["id"], "output_index": 0}
    head: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _output_item(req, reply, ident, done=False),
        },
    ]
    if req.tool is None:
        text = {**where, "content_index": 0}
        head.append({"type": "response.content_part.added", **text, "part": _text_part("")})
        chunks = [
            {"type": "response.output_text.delta", **text, "delta": piece, "logprobs": []}
            for piece in split_text(reply.text, reply.chunks)
        ]
        tail = [
            {"type": "response.output_text.done", **text, "text": reply.text, "logprobs": []},
            {"type": "response.content_part.done", **text, "part": _text_part(reply.text)},
        ]
    else:
        chunks = [
            {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            for piece in split_text(ARGUMENTS, reply.chunks)
        ]
        tail = [
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": req.tool,
                "arguments": ARGUMENTS,
            }
        ]
    tail += [
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": _response(req, reply, ident, created, [item])},
    ]
    for number, event in enumerate([*head, *chunks, *tail]):
        event["sequence_number"] = number
    return head, chunks, tail
