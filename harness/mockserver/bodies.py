"""OpenAI's chat.completions and Responses bodies for one request and the scenario's reply.

Pure builders: :func:`build_payload` gives the complete (non-streamed) answer,
:func:`build_stream` the streamed one as a :class:`~.payload.StreamPlan` of SSE frames (chat
sends ``data:`` lines and ``[DONE]``; Responses sends ``event:`` lines and numbered events).
``ident`` is a unique suffix the caller picks per call (every id in one answer derives from
it) and ``created`` the Unix time to report; both arrive as arguments so that
:mod:`.templates` can build an answer once with sentinels and substitute them per call.
Each builder's shape is checked against the installed SDK's own models in strict mode
(tests/test_mockserver_bodies.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harness.mockserver.payload import Payload, StreamPlan, dumps, json_payload
from harness.mockserver.request import MODEL, ApiRequest
from harness.schema import Reply

__all__ = ["ARGUMENTS", "build_payload", "build_stream", "models_payload", "split_text"]

ARGUMENTS: Final = "{}"  # arguments of every tool call the mock makes


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


def models_payload() -> Payload:
    """The answer to ``GET /v1/models``: the one mock model."""
    model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "harness"}
    return json_payload(200, {"object": "list", "data": [model]})


def build_payload(req: ApiRequest, reply: Reply, ident: str, created: int) -> Payload:
    """The complete answer to ``req`` (its ``stream`` flag is not read)."""
    build = _chat_complete if req.endpoint == "chat.completions" else _responses_complete
    return json_payload(200, build(req, reply, ident, created))


def build_stream(req: ApiRequest, reply: Reply, ident: str, created: int) -> StreamPlan:
    """The streamed answer to ``req`` as SSE frames."""
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
    return b"data: " + dumps(payload) + b"\n\n"


def _event(payload: Mapping[str, Any]) -> bytes:
    # Responses events carry an `event:` line too, as OpenAI sends them.
    return f"event: {payload['type']}\n".encode() + _data(payload)


# --- chat.completions ----------------------------------------------------------------------

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
