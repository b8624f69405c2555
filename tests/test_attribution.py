"""Leak attribution: real workers, real sockets, factories whose leaks come from different
call sites; each test checks the file:line the attribution names."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from harness.attribution import Attribution, Socket
from harness.cli import main
from harness.holders import Holder, describe
from harness.mockserver import MockServer
from harness.probe import Probe
from harness.report.jsonfile import load_summary
from harness.result import LIVE_AFTER_GC, RunResult, held_sample
from harness.runner import run_one
from harness.scenario import Scenario, parse_scenario
from harness.testing import assert_healthy, check_factory
from harness.variants._http import sdk_stack
from harness.zygote import Zygote

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

CHECKOUT = Path(__file__).resolve().parent.parent  # bundled variants fork from `forks` here

# What each SDK line builds is attributed on every line (`sdk`); the flag's plumbing through
# the commands and the plugin runs once.
pytest_plugins = ["pytester"]

# Never closes request clients; the server reaps idle connections with a FIN: a pool shared
# by every client holds a reaped socket in CLOSE_WAIT with the gateway still up.
# The idle timeout leaves the client time to close each response first: a pool that finds its
# connection already reaped when the response closes drops it (no CLOSE_WAIT to attribute),
# which a 60 ms timeout allowed on a loaded machine (CI saw it once, openai 2.x async), and
# 250 ms once with two busy loops and two test runs beside it (openai 1.x async).
SCENARIO = """version: 1
server: {keepalive: {idle_timeout_ms: 750, close: fin}}
client: {kwargs: {timeout: 10}, close_request_clients: false}
session: {turns: 3, idle_between_turns_ms: 1000, gc: off}
expect: {close_wait_live_after_gc: 0}
"""

# A module-level client, made when the module is imported (outside any factory call).
MODULE_CACHE = """
import openai
from harness.variants._http import sdk_stack

_HTTP = sdk_stack().{Client}()  # SITE


def create_openai_client(client_kwargs, *, shared):
    return openai.{OpenAI}(**client_kwargs, http_client=_HTTP)
"""

# A framework's client cache keyed by base URL, filled on first use.
URL_CACHE = """
import openai
from harness.variants._http import sdk_stack


class HttpClients:
    def __init__(self):
        self._by_url = {{}}

    def for_url(self, base_url):
        if base_url not in self._by_url:
            self._by_url[base_url] = sdk_stack().{Client}()  # SITE
        return self._by_url[base_url]


CLIENTS = HttpClients()


def create_openai_client(client_kwargs, *, shared):
    http = CLIENTS.for_url(str(client_kwargs["base_url"]))
    return openai.{OpenAI}(**client_kwargs, http_client=http)
"""

# A real gateway's shape: the factory is a method of a large class (here, the bug: it plants
# an HTTP client in the caller's kwargs), bound by an adapter module-level function.
BIG_CLASS = """
import openai
from harness.variants._http import sdk_stack


class Gateway:
    def __init__(self):
        raise RuntimeError("too costly to build in a test")

    def _load_config(self):
        return {{}}

    def _route(self, message):
        return message

    def _create_openai_client(self, client_kwargs, *, shared):
        if "http_client" not in client_kwargs:
            client_kwargs["http_client"] = sdk_stack().{Client}()  # SITE
        return openai.{OpenAI}(**client_kwargs)

    def _shutdown(self):
        pass
"""
ADAPTER = """
from gateway_app import Gateway

_GATEWAY = Gateway.__new__(Gateway)


def create_openai_client(client_kwargs, *, shared):
    return _GATEWAY._create_openai_client(client_kwargs, shared=shared)  # VIA
"""

KINDS = {"sync": ("Client", "OpenAI"), "async": ("AsyncClient", "AsyncOpenAI")}


def _line(path: Path, end: str) -> int:
    """The number of the one line of ``path`` that ends with ``end``."""
    lines = path.read_text().splitlines()
    (number,) = [n for n, text in enumerate(lines, 1) if text.rstrip().endswith(end)]
    return number


def _write(root: Path, name: str, template: str, kind: str) -> Path:
    client, sdk = KINDS[kind]
    path = root / name
    path.write_text(template.format(Client=client, OpenAI=sdk))
    return path


def _scenario() -> Scenario:
    return parse_scenario(SCENARIO, path="attribution.yaml")


def _live(result: RunResult) -> tuple[Holder, ...]:
    assert result.status == "completed", result.detail
    assert result.close_wait_live_after_gc > 0  # a leak to attribute
    sample = next(s for s in result.samples if s.label == LIVE_AFTER_GC)
    assert sum(h.sockets for h in sample.held_by) == sample.close_wait + sample.established
    return sample.held_by


def _kind(kind: str) -> str:
    return f"{sdk_stack().__name__}.{KINDS[kind][0]}"


@pytest.mark.sdk
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_module_level_client_is_named_at_its_import_line(
    tmp_path: Path, kind: str, forks: Zygote | None
) -> None:
    path = _write(tmp_path, "cached.py", MODULE_CACHE, kind)
    spec = "cached.py:create_openai_client"
    result = run_one(_scenario(), spec, root=tmp_path, attribute=True, zygote=forks)
    (holder,) = _live(result)
    assert (holder.site, holder.function) == (f"cached.py:{_line(path, 'SITE')}", "<module>")
    assert (holder.kind, holder.objects, holder.shared) == (_kind(kind), 1, None)
    # 1 shared client, then one request client per call (3 turns)
    assert (holder.shared_clients, holder.request_clients, holder.role) == (1, 3, "both")
    assert "outside the factory" in describe(holder)


@pytest.mark.sdk
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cache_keyed_by_base_url_is_named_in_the_cache(
    tmp_path: Path, kind: str, forks: Zygote | None
) -> None:
    path = _write(tmp_path, "framework.py", URL_CACHE, kind)
    spec = "framework.py:create_openai_client"
    result = run_one(_scenario(), spec, root=tmp_path, attribute=True, zygote=forks)
    (holder,) = _live(result)
    assert (holder.site, holder.function) == (f"framework.py:{_line(path, 'SITE')}", "for_url")
    assert holder.via.startswith("framework.py:") and holder.via.endswith("create_openai_client")
    assert (holder.shared, holder.turns, holder.role) == (True, (1,), "both")
    assert holder.stack[0] == f"framework.py:{_line(path, 'SITE')} in for_url"


@pytest.mark.sdk
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_class_method_adapter_names_the_method_not_the_adapter(
    tmp_path: Path, kind: str, forks: Zygote | None
) -> None:
    big = _write(tmp_path, "gateway_app.py", BIG_CLASS, kind)
    adapter = _write(tmp_path, "adapter.py", ADAPTER, kind)
    spec = "adapter.py:create_openai_client"
    result = run_one(_scenario(), spec, root=tmp_path, attribute=True, zygote=forks)
    (holder,) = _live(result)
    site = f"gateway_app.py:{_line(big, 'SITE')}"
    assert (holder.site, holder.function) == (site, "_create_openai_client")
    assert holder.via == f"adapter.py:{_line(adapter, 'VIA')} in create_openai_client"
    assert (holder.shared, holder.shared_clients, holder.request_clients) == (True, 1, 3)
    assert describe(holder) == (
        f"{holder.sockets} socket{'s' * (holder.sockets > 1)} held by one {_kind(kind)} "
        f"created at {site} in _create_openai_client called from {holder.via} "
        "(shared=True, turn 1), used by 1 shared client and reused by 3 request clients"
    )


@pytest.mark.sdk
@pytest.mark.parametrize("variant", ["keepalive-mutating", "keepalive-mutating-async"])
def test_bundled_mutating_variant_names_the_injected_client(
    variant: str, forks: Zygote | None
) -> None:
    """The shared client injected into the kept kwargs: built by the helper, called from the
    factory's injection line."""
    import harness.variants as variants

    folder = Path(variants.__file__).parent
    helper = folder / "_http.py"
    made = _line(helper, "return make_client(transport=transport, limits=limits)")
    module = folder / f"{variant.replace('-', '_')}.py"
    asynchronous = ", asynchronous=True" if variant.endswith("-async") else ""
    injected = _line(module, f"keepalive_client(sdk_defaults=False{asynchronous})")
    result = run_one(_scenario(), variant, attribute=True, root=CHECKOUT, zygote=forks)
    (holder,) = _live(result)
    assert (holder.site, holder.function) == (
        f"harness/variants/_http.py:{made}",
        "keepalive_client",
    )
    assert holder.via == f"harness/variants/{module.name}:{injected} in create_openai_client"
    assert (holder.shared, holder.role, holder.request_clients) == (True, "both", 3)


def test_off_by_default_writes_no_attribution(forks: Zygote | None) -> None:
    result = run_one(_scenario(), "keepalive-mutating", root=CHECKOUT, zygote=forks)
    assert result.close_wait_live_after_gc > 0
    assert all(not s.held_by and "held_by" not in s.to_dict() for s in result.samples)


@pytest.mark.sdk
def test_assert_healthy_says_who_holds_the_sockets() -> None:
    checked = check_factory("keepalive-mutating", _scenario(), attribute=True)
    with pytest.raises(AssertionError) as caught:
        assert_healthy(checked)
    message = str(caught.value)
    assert "held by (live after gc):" in message
    assert "created at harness/variants/_http.py:" in message
    assert "(shared=True, turn 1), used by 1 shared client and reused by 3 request clients" in (
        message
    )


@pytest.mark.sdk
def test_in_process_pools_unwrapped_clients_and_unowned_sockets(tmp_path: Path) -> None:
    """Without a worker: a client no OpenAI client wraps, and a bare socket no pool holds."""
    stack = sdk_stack()
    original = stack.Client.__init__
    with (
        MockServer(_scenario().server) as server,
        Attribution(Path(__file__).parent) as attribution,
    ):
        client = stack.Client()
        bare = socket.create_connection(("127.0.0.1", server.port))
        try:
            client.post(f"{server.base_url}/chat/completions", json=_body())
            reading = Probe(server.port).read()
            sockets = [Socket(fd, status) for fd, status in reading.held()]
            held = {h.kind: h for h in attribution.holders(sockets)}
        finally:
            client.close()
            bare.close()
    assert stack.Client.__init__ is original  # uninstalled
    pooled = held[f"{stack.__name__}.Client"]
    assert (pooled.sockets, pooled.role, pooled.shared) == (1, "neither", None)
    assert (
        pooled.site == f"{Path(__file__).name}:{_line(Path(__file__), 'client = stack.Client()')}"
    )
    assert (
        describe(held[""])
        == "1 socket held by no connection pool the attribution saw being created"
    )


def _body() -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "attribution.yaml"
    path.write_text(SCENARIO + "variants: {keepalive-mutating: fail}\n")
    return path


def test_run_check_and_regress_take_attribute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = str(_scenario_file(tmp_path))
    reports = str(tmp_path / "reports")
    args = ["--variant", "keepalive-mutating", "--attribute", "--report-dir", reports]
    assert main(["run", scenario, *args]) == 0  # caught, as the scenario expects
    out = capsys.readouterr().out
    assert "held by (live after gc):\n  1 socket held by one " in out
    assert "(shared=True, turn 1), used by 1 shared client and reused by 3 request clients" in out
    assert "Held by:" in (tmp_path / "reports" / "latest" / "summary.md").read_text()
    assert "<h3>Held by</h3>" in (tmp_path / "reports" / "latest" / "report.html").read_text()
    check = ["check", "--scenario", scenario, "--factory", "keepalive-mutating", "--attribute"]
    assert main([*check, "--json", str(tmp_path / "c.json")]) == 1
    (run,) = load_summary(tmp_path / "c.json").entries[0].runs
    assert held_sample(run) is not None
    capsys.readouterr()
    assert main(["regress", scenario, *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    live = [s for s in data["entries"][0]["runs"][0]["samples"] if s["label"] == LIVE_AFTER_GC]
    assert live[0]["held_by"][0]["via"].startswith("harness/variants/keepalive_mutating.py:")


@pytest.mark.slow
def test_harness_check_fixture_takes_attribute(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        clients="""
        import openai


        def create_openai_client(client_kwargs, *, shared):
            if "http_client" not in client_kwargs:
                client_kwargs["http_client"] = openai.DefaultHttpxClient()
            return openai.OpenAI(**client_kwargs)
        """,
        test_gateway="""
        from harness.testing import assert_healthy


        def test_stale_pool(harness_check):
            assert_healthy(harness_check("clients:create_openai_client", "stale-pool-idle-fin",
                                         attribute=True))
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*held by (live after gc):*", "*created at clients.py:6 in create_openai_client*"]
    )
