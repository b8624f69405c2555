"""Bundled variants: what each does to the kwargs and the HTTP client, and what it shows
through the gateway simulator against the mock server (real SDK, real sockets)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import _constants

from harness.agateway import AsyncGateway, client_kind
from harness.factory import resolve_factory
from harness.gateway import Gateway
from harness.mockserver import MockServer
from harness.result import CallRecord
from harness.scenario import parse_scenario
from harness.variants import BUNDLED, shared_http_client, shared_http_client_async
from harness.variants._http import KEEPALIVE_SOCKET_OPTIONS, keepalive_client, sdk_stack

# Variants build their HTTP client from the stack the installed SDK runs on.
pytestmark = pytest.mark.sdk

BASE = {"api_key": "sk-dummy", "base_url": "http://127.0.0.1:9/v1"}


@pytest.fixture(autouse=True)
def _fresh_shared_client() -> Iterator[None]:
    shared_http_client.reset_shared_client()
    asyncio.run(shared_http_client_async.reset_shared_client())
    yield
    shared_http_client.reset_shared_client()
    asyncio.run(shared_http_client_async.reset_shared_client())


@pytest.fixture
def made() -> Iterator[list[openai.OpenAI]]:
    clients: list[openai.OpenAI] = []
    yield clients
    for client in clients:
        client.close()


def _make(
    name: str, kwargs: dict[str, Any], made: list[openai.OpenAI], *, shared: bool
) -> openai.OpenAI:
    client: openai.OpenAI = resolve_factory(name, Path("."))(kwargs, shared=shared)
    made.append(client)
    return client


def _pool(client: openai.OpenAI) -> Any:
    return client._client._transport._pool  # type: ignore[attr-defined]


def test_the_stack_is_the_sdks() -> None:
    major = int(importlib.metadata.version("openai").split(".")[0])
    assert sdk_stack().__name__ == ("httpx2" if major >= 3 else "httpx")


def test_keepalive_socket_options_turn_keepalive_on() -> None:
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in KEEPALIVE_SOCKET_OPTIONS
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30) in KEEPALIVE_SOCKET_OPTIONS


def test_keepalive_client_with_sdk_defaults() -> None:
    with keepalive_client(sdk_defaults=True) as client:
        assert type(client).__module__.split(".")[0] == sdk_stack().__name__
        assert client.timeout == _constants.DEFAULT_TIMEOUT
        pool = client._transport._pool
        assert (pool._max_connections, pool._max_keepalive_connections) == (1000, 100)
        assert pool._socket_options == KEEPALIVE_SOCKET_OPTIONS


def test_keepalive_client_without_sdk_defaults_loses_the_limits() -> None:
    with keepalive_client(sdk_defaults=False) as client:
        pool = client._transport._pool
        assert (pool._max_connections, pool._max_keepalive_connections) == (100, 20)
        assert client.timeout == sdk_stack().Timeout(5.0)


def test_baseline_injects_nothing(made: list[openai.OpenAI]) -> None:
    kwargs = dict(BASE)
    one = _make("baseline", kwargs, made, shared=True)
    two = _make("baseline", kwargs, made, shared=False)
    assert kwargs == BASE
    assert one._client is not two._client
    assert one.timeout == _constants.DEFAULT_TIMEOUT


def test_keepalive_mutating_plants_one_client_in_the_callers_dict(
    made: list[openai.OpenAI],
) -> None:
    kwargs = dict(BASE)
    shared = _make("keepalive-mutating", kwargs, made, shared=True)
    assert set(kwargs) == {*BASE, "http_client"}
    request = _make("keepalive-mutating", dict(kwargs), made, shared=False)
    assert request._client is shared._client is kwargs["http_client"]
    assert _pool(request)._max_connections == 100


def test_keepalive_fixed_copies_and_keeps_sdk_defaults(made: list[openai.OpenAI]) -> None:
    kwargs = dict(BASE)
    one = _make("keepalive-fixed", kwargs, made, shared=True)
    two = _make("keepalive-fixed", kwargs, made, shared=False)
    assert kwargs == BASE
    assert one._client is not two._client
    assert one.timeout == _constants.DEFAULT_TIMEOUT
    assert _pool(two)._max_connections == 1000
    assert _pool(two)._socket_options == KEEPALIVE_SOCKET_OPTIONS


def test_keepalive_fixed_leaves_a_given_http_client_alone(made: list[openai.OpenAI]) -> None:
    with keepalive_client(sdk_defaults=True) as given:
        client = _make("keepalive-fixed", {**BASE, "http_client": given}, made, shared=False)
        assert client._client is given


def test_shared_http_client_copies_but_shares(made: list[openai.OpenAI]) -> None:
    kwargs = dict(BASE)
    one = _make("shared-http-client", kwargs, made, shared=True)
    two = _make("shared-http-client", dict(kwargs), made, shared=False)
    assert kwargs == BASE
    assert one._client is two._client
    assert _pool(one)._max_connections == 1000


def test_a_closed_shared_client_stays_closed(made: list[openai.OpenAI]) -> None:
    _make("shared-http-client", dict(BASE), made, shared=False).close()
    assert _make("shared-http-client", dict(BASE), made, shared=False).is_closed()


# --- through the simulator, against the mock server ------------------------------------

# Two turns of two rounds: a tool round and a turn boundary each way. max_retries 0: openai
# 1.x/2.x retry a closed transport twice with backoff (about 1.3 s a call) before raising the
# same error; those retries are counted in test_runner, not here.
CLOSING = """
version: 1
server: {api: API, keepalive: {idle_timeout_ms: 50}}
client: {kwargs: {timeout: 10, max_retries: 0}, close_request_clients: true}
session: {turns: 2, calls_per_turn: 2, idle_between_turns_ms: 80, stream: STREAM}
"""


def _session(variant: str, api: str, stream: bool) -> tuple[list[CallRecord], Any]:
    scenario = parse_scenario(
        CLOSING.replace("API", api).replace("STREAM", "true" if stream else "false")
    )
    records: list[CallRecord] = []
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, resolve_factory(variant, Path(".")), server.base_url)
        gateway.open()
        try:
            if client_kind(gateway.shared) == "async":
                asyncio.run(_run_async(AsyncGateway.adopt(gateway), records))
            else:
                gateway.run(on_call=records.append)
        finally:
            gateway.close()
        return records, server.stats()


async def _run_async(gateway: AsyncGateway, records: list[CallRecord]) -> None:
    try:
        await gateway.run(on_call=records.append)
    finally:
        await gateway.close()


@pytest.mark.parametrize("api", ["chat.completions", "responses"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("variant", [name for name, fixed in BUNDLED.items() if fixed])
def test_fixed_variants_are_healthy(variant: str, api: str, stream: bool) -> None:
    records, stats = _session(variant, api, stream)
    assert [(r.turn, r.round, r.ok) for r in records] == [
        (turn, rnd, True) for turn in range(1, 3) for rnd in (1, 2)
    ]
    # One fresh connection per request client, no hidden retries.
    assert (stats.connections, stats.retries) == (4, 0)


@pytest.mark.parametrize(
    "variant",
    [
        "keepalive-mutating",
        "shared-http-client",
        "keepalive-mutating-async",
        "shared-http-client-async",
    ],
)
def test_sharing_variants_fail_every_call_after_the_first_close(variant: str) -> None:
    records, stats = _session(variant, "chat.completions", False)
    assert [r.ok for r in records] == [True] + [False] * 3
    major = int(openai.__version__.split(".")[0])
    expected = "RuntimeError" if major >= 3 else "openai.APIConnectionError"
    assert Counter(r.error_type for r in records if not r.ok) == {expected: 3}
    assert records[1].error_chain[-1] == (
        "RuntimeError: Cannot send a request, as the client has been closed."
    )
    assert (stats.connections, stats.retries) == (1, 0)


def test_keepalive_is_on_the_live_socket() -> None:
    with (
        MockServer(parse_scenario("version: 1").server) as server,
        keepalive_client(sdk_defaults=True) as client,
    ):
        assert client.get(f"{server.base_url}/models").status_code == 200
        [connection] = client._transport._pool.connections
        sock = connection._connection._network_stream.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
