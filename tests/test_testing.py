"""harness.testing: factories as specs, server specs, checking and its failure message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import FactoryError, ScenarioError, UsageError
from harness.result import CallRecord, ServerStats, SocketSample, summarize
from harness.scenario import Keepalive, Reply, ServerSpec, parse_scenario
from harness.testing import (
    Checked,
    assert_healthy,
    bundled_scenarios,
    check_factory,
    factory_spec,
    resolve_scenario,
    server_spec,
)
from harness.variants import baseline
from harness.verdict import judge

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

BUNDLED = [
    "abandoned-streams",
    "concurrent-sessions",
    "concurrent-stale-pool",
    "pool-exhaustion",
    "rate-limited",
    "reload-between-turns",
    "reset-on-reuse",
    "reset-on-reuse-no-retries",
    "silent-idle-drop",
    "stale-pool-idle-fin",
    "streaming-responses",
    "terminate-in-flight",
    "use-after-close",
]


def module_level(client_kwargs: dict[str, Any], *, shared: bool) -> Any:
    return baseline.create_openai_client(client_kwargs, shared=shared)


def test_bundled_scenarios_are_the_files_in_scenarios() -> None:
    assert bundled_scenarios() == BUNDLED
    assert resolve_scenario("use-after-close").name == "use-after-close"


def test_an_unknown_bundled_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^nope: no such file or directory, nor a bundled sc"):
        resolve_scenario("nope")


def test_a_spec_string_is_used_as_is(tmp_path: Path) -> None:
    assert factory_spec("pkg.mod:make", tmp_path) == ("pkg.mod:make", tmp_path)


def test_a_module_level_function_becomes_module_and_name_with_its_import_root() -> None:
    spec, root = factory_spec(baseline.create_openai_client, Path("/elsewhere"))
    assert spec == "harness.variants.baseline:create_openai_client"
    assert root == Path(baseline.__file__).resolve().parents[2]
    spec, root = factory_spec(module_level, Path("/elsewhere"))
    assert (spec, root) == (f"{__name__}:module_level", Path(__file__).resolve().parent)


def test_a_main_script_function_becomes_a_file_spec(tmp_path: Path) -> None:
    script = tmp_path / "gw.py"
    script.write_text(
        "from pathlib import Path\n"
        "from harness.testing import factory_spec\n"
        "def make(client_kwargs, *, shared):\n    return None\n"
        "print(factory_spec(make, Path('.')))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == repr((f"{script.resolve()}:make", script.resolve().parent))


@pytest.mark.parametrize(
    "factory",
    [
        lambda client_kwargs, *, shared: None,
        pytest.param("closure", id="closure"),
        pytest.param("method", id="method"),
    ],
)
def test_lambdas_closures_and_methods_are_refused(factory: Any) -> None:
    def closure(client_kwargs: dict[str, Any], *, shared: bool) -> None:
        return None

    class Holder:
        @staticmethod
        def method(client_kwargs: dict[str, Any], *, shared: bool) -> None:
            return None

    factory = {"closure": closure, "method": Holder.method}.get(factory, factory)
    with pytest.raises(FactoryError, match="cannot run in a worker process: it is a lambda"):
        factory_spec(factory, Path("."))


def test_server_spec_from_keys_a_mapping_and_a_scenario() -> None:
    assert server_spec() == ServerSpec()
    keyed = server_spec(keepalive={"idle_timeout_ms": 50, "close": "rst"}, reply={"chunks": 2})
    assert keyed == ServerSpec(
        keepalive=Keepalive(idle_timeout_ms=50, close="rst"), reply=Reply(chunks=2)
    )
    assert server_spec({"keepalive": {"idle_timeout_ms": 50}}, reply={"chunks": 2}) == (
        ServerSpec(keepalive=Keepalive(idle_timeout_ms=50), reply=Reply(chunks=2))
    )
    assert server_spec("use-after-close") == resolve_scenario("use-after-close").server


def test_server_spec_validates_like_a_scenario_file() -> None:
    with pytest.raises(ScenarioError) as err:
        server_spec(keepalive={"close": "slam"})
    assert str(err.value) == (
        "<server mapping>: key 'server.keepalive.close': 'slam' is not allowed; "
        "use one of: fin, rst, silent"
    )
    with pytest.raises(UsageError, match=r"give a scenario or server keys, not both"):
        server_spec("use-after-close", latency_ms=5)


def _result() -> Any:
    records = [
        CallRecord(session=0, turn=1, round=1, ok=True, latency_ms=2.0, started_s=0.0),
        CallRecord(
            session=0,
            turn=2,
            round=1,
            ok=False,
            latency_ms=1.0,
            started_s=0.1,
            error_type="RuntimeError",
            error_chain=("RuntimeError: closed",),
        ),
    ]
    samples = [
        SocketSample("start", 0, 0, 10),
        SocketSample("turn 1", 0, 1, 12, turn=1),
        SocketSample("turn 2", 1, 1, 13, turn=2),
        SocketSample("after close", 1, 0, 12),
        SocketSample("after gc", 0, 0, 11),
    ]
    return summarize(
        scenario="use-after-close",
        variant="gw:make",
        status="completed",
        records=records,
        samples=samples,
        server=ServerStats(connections=1),
        wall_s=0.5,
        environment={},
        client_kind="async",
    )


def test_the_failure_message_is_the_reasons_and_the_turn_table() -> None:
    scenario = resolve_scenario("use-after-close")
    result = _result()
    checked = Checked(scenario, result, judge(result, scenario.expect, "pass"))
    with pytest.raises(AssertionError) as err:
        assert_healthy(checked)
    assert str(err.value) == (
        "gw:make on use-after-close (async client): fail, expected pass\n"
        "  - errors 1 > 0\n"
        "\n"
        "turn  calls  errors  close_wait  established  fds  first error\n"
        "   1      1       0           0            1   12\n"
        "   2      1       1           1            1   13  RuntimeError\n"
        "calls 2, errors 1 (RuntimeError x1), retries 0 (SDK retries 0), connections 1, "
        "CLOSE_WAIT peak 1 growth 1 live after gc 0 after close 1 after gc 0, p95 2 ms"
    )


def test_check_factory_runs_a_callable_in_a_worker() -> None:
    checked = check_factory(baseline.create_openai_client, "use-after-close")
    assert checked.result.variant == "harness.variants.baseline:create_openai_client"
    assert (checked.result.status, checked.result.client_kind, checked.result.calls) == (
        "completed",
        "sync",
        4,
    )
    assert checked.healthy
    assert_healthy(checked)


def test_check_factory_catches_a_bug_on_a_user_scenario(tmp_path: Path) -> None:
    path = tmp_path / "closing.yaml"
    path.write_text(
        "version: 1\nclient: {kwargs: {timeout: 10}, close_request_clients: true}\n"
        "session: {turns: 3}\nexpect: {errors: 0}\n"
    )
    checked = check_factory("keepalive-mutating-async", path, expected="fail")
    assert (checked.result.client_kind, checked.result.errors) == ("async", 2)
    assert (checked.verdict.reasons, checked.verdict.as_expected) == (("errors 2 > 0",), True)
    assert parse_scenario(path.read_text()).expect.errors == 0


def test_check_factory_expects_the_role_run_gives_a_factory(tmp_path: Path) -> None:
    """By default the scenario's role for the factory, as `harness run --factory`: `pass` in
    an event scenario without `variants:` (a named scenario judges it), else what it lists."""
    path = tmp_path / "reload.yaml"
    text = (
        "version: 1\nclient: {kwargs: {max_retries: 0, timeout: 5}, calls_via: shared}\n"
        "session: {turns: 2, events: [{action: reload, after_turn: 1}]}\n"
    )
    path.write_text(text)
    checked = check_factory("provider-keeps-closed", path)
    assert (checked.verdict.expected, checked.verdict.as_expected) == ("pass", False)
    path.write_text(text + "variants: {provider-keeps-closed: fail}\n")
    checked = check_factory("provider-keeps-closed", path)
    assert (checked.verdict.expected, checked.verdict.as_expected) == ("fail", True)
    assert checked.verdict.reasons == ("errors 1 > 0",)
