"""The openai SDK's first-use costs, paid once in the zygote instead of in every forked run.

The SDK defers work to the first request of each shape. It builds a response model's pydantic
schema the first time it parses one (openai sets ``defer_build``: about 6 ms for a chat
completion, 70 ms for a Responses ``Response`` and 25 ms for its stream events), resolves a
request TypedDict's type hints the first time it transforms one, and reads the platform for
its headers once. A run forked from the zygote used to pay all of it again.

:func:`warm` sends one request of each shape the gateway sends to one API (whole and
streamed, offering a tool and then carrying its result), sync and async, with the gateway's
own request helpers, through the SDK's clients over an in-memory transport that answers with
the mock server's templates. No socket, no thread and no event loop outlives it. A run then
sends and receives on the wire exactly what it did; only those caches are full. The zygote
warms the chat API as it starts (about 60 ms) and the Responses API (about 0.15 s) before
the first run that needs it (:func:`warm_for_job`), so a zygote that serves a few chat runs
does not pay for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Final, get_args

import openai

from harness.conversation import (
    Conversation,
    Round,
    append_tool_result,
    call_id,
    request_args,
    resource_of,
)
from harness.fields import resolve_hints
from harness.mockserver.payload import SSE_HEADERS, Reject
from harness.mockserver.request import parse_api_request
from harness.mockserver.routing import route
from harness.mockserver.templates import template_for
from harness.schema import API, Reply, Scenario, ServerSpec
from harness.variants._http import sdk_stack

__all__ = ["warm", "warm_for_job"]

_BASE_URL: Final = "http://127.0.0.1:9/v1"  # never dialled: the transport answers
_REPLY: Final = Reply()
_warmed: set[str] = set()


def warm(api: API) -> None:
    """Every request shape the gateway sends to ``api``, sync then async, answered in
    memory, and the type hints a job's scenario is read back by; once per API."""
    if api in _warmed:
        return
    _warmed.add(api)  # once even when it fails: it would fail the same way again
    resolve_hints(Scenario)  # cached: free after the first time
    stack = sdk_stack()
    # trust_env=False: a proxy variable must not route even this no-socket client elsewhere.
    http = stack.Client(transport=stack.MockTransport(_answerer(stack)), trust_env=False)
    # max_retries=0: a failed request ends the warm-up at once, not after backing off.
    with openai.OpenAI(api_key="w", base_url=_BASE_URL, max_retries=0, http_client=http) as client:
        for resource, kwargs in _requests(client, api):
            response = resource_of(client, resource).create(**kwargs)
            for event in response if kwargs["stream"] else (response,):
                call_id(event)
    asyncio.run(_warm_async(stack, api))


def warm_for_job(path: str) -> None:
    """:func:`warm` for the API of the scenario in job file ``path`` (a Responses run costs
    the zygote about 0.15 s once, so it warms that API only when a run needs it). Anything
    but a regular file is left to the worker: reading a FIFO would block the zygote."""
    if _warmed.issuperset(get_args(API)):
        return  # every API is warm: no fork needs its job read here again
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as job:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        api = json.loads(job.read())["scenario"]["server"]["api"]
    if api in get_args(API):
        warm(api)


async def _warm_async(stack: ModuleType, api: API) -> None:
    http = stack.AsyncClient(transport=stack.MockTransport(_answerer(stack)), trust_env=False)
    client = openai.AsyncOpenAI(api_key="w", base_url=_BASE_URL, max_retries=0, http_client=http)
    async with client:
        for resource, kwargs in _requests(client, api):
            response = await resource_of(client, resource).create(**kwargs)
            if kwargs["stream"]:
                async for event in response:
                    call_id(event)
            else:
                call_id(response)


def _requests(client: Any, api: API) -> Iterator[tuple[str, dict[str, Any]]]:
    """Whole and streamed: a round offering the tool, and one carrying its result (none
    where the SDK lacks the API: early 1.x has no ``responses``)."""
    if api == "responses" and not hasattr(client, "responses"):
        return
    scenario = Scenario(name="warm", server=ServerSpec(api=api))
    answered = Conversation.for_turn(1)
    append_tool_result(scenario, answered, "")
    for stream in (False, True):
        offer = Round(1, 1, Conversation.for_turn(1), True, False, stream)
        yield request_args(scenario, offer, session=0)
        yield request_args(scenario, Round(1, 2, answered, False, True, stream), session=0)


def _answerer(stack: ModuleType) -> Callable[[Any], Any]:
    """A transport handler answering as the mock server does, in ``stack``'s types."""

    def answer(request: Any) -> Any:
        endpoint = route(request.method, request.url.raw_path.decode("ascii"))
        parsed = (
            parse_api_request(endpoint, request.content)
            if endpoint == "chat.completions" or endpoint == "responses"
            else Reject(404, f"not a warm-up endpoint: {endpoint}")
        )
        if isinstance(parsed, Reject):  # the gateway's helpers changed shape: say so
            raise RuntimeError(f"warm-up request refused: {parsed.message}")
        template = template_for(parsed, _REPLY)
        if parsed.stream:
            body = template.stream_bytes(ident="warm", created=0)
            return stack.Response(200, headers=list(SSE_HEADERS), content=body)
        payload = template.payload(ident="warm", created=0)
        return stack.Response(payload.status, headers=list(payload.headers), content=payload.body)

    return answer
