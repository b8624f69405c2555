"""Gateway lifecycle events (issue 23): the schema, the provider policies and both gateways.

The in-flight cases order the terminate after the calls by a condition, not a delay: the
event's ``at_ms`` wait is the injected sleep, which returns once the mock server has seen
the turn's requests (they are then stalled by a fault, so they are in flight).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _wait import until

from harness.agateway import AsyncGateway
from harness.bisect.git import git_env
from harness.cli import main
from harness.errors import FactoryError, ScenarioError, UsageError
from harness.factory import resolve_factory
from harness.gateway import Gateway
from harness.mockserver import MockServer
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.result import CallRecord, SocketSample, event_marks, turn_label
from harness.runner import run_one
from harness.scenario import Event, Scenario, load_scenario, parse_scenario
from harness.testing import Checked, check_factory
from harness.variants._provider import Lifecycle
from harness.verdict import RegressEntry, RegressSummary
from harness.zygote import Zygote

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
NEW = ("reload-between-turns", "terminate-in-flight")
AT_MS = 7  # the marker the injected sleeps recognise: "wait until the calls are in flight"
POLL_LIMIT_S = 60.0  # a bound against a hang, not a speed check


# --- schema --------------------------------------------------------------------------


def test_events_and_calls_via_load_as_values() -> None:
    scenario = parse_scenario(
        "version: 1\nclient: {calls_via: shared}\nsession:\n  turns: 4\n  events:\n"
        "    - {action: reload, after_turn: 2}\n"
        "    - {action: terminate, during_turn: 3, at_ms: 150}\n"
    )
    assert scenario.client.calls_via == "shared"
    assert scenario.session.events == (
        Event(action="reload", after_turn=2),
        Event(action="terminate", during_turn=3, at_ms=150),
    )
    assert [e.label for e in scenario.session.events] == [
        "reload after turn 2",
        "terminate during turn 3 at 150 ms",
    ]
    assert scenario.session.events_at(2) == ("reload",)
    assert scenario.session.events_at(1) == ()
    data = scenario.to_dict()
    assert data["session"]["events"] == [
        {"action": "reload", "after_turn": 2},
        {"action": "terminate", "during_turn": 3, "at_ms": 150},
    ]
    assert data["client"]["calls_via"] == "shared"
    assert Scenario.from_dict(json.loads(json.dumps(data))) == scenario


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("{action: reload}", "key 'session.events[0]': needs exactly one of"),
        ("{action: boom, after_turn: 1}", "'boom' is not allowed; use one of: terminate, reload"),
        ("{after_turn: 1}", "key 'session.events[0].action': missing; use one of"),
        ("{action: reload, after_turn: 5}", "5 is after the last turn; the session has 4 turns"),
        ("{action: reload, after_turn: 0}", "0 is out of range; allowed 1..100000"),
        ("{action: reload, after_turn: 1, at_ms: 3}", "at_ms': only goes with `during_turn`"),
        ("{action: terminate, during_turn: 1}", "at_ms': missing; say when in the turn"),
        ("{action: terminate, during_turn: 1, at_ms: -1}", "-1 is out of range"),
        ("{action: reload, after_turn: 1, during_turn: 2, at_ms: 1}", "needs exactly one of"),
        ("{action: reload, after_turn: 1, when: 2}", "'session.events[0].when': unknown key"),
    ],
)
def test_a_bad_event_is_one_line_naming_file_line_and_key(event: str, message: str) -> None:
    text = f"version: 1\nsession:\n  turns: 4\n  events:\n    - {event}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, path="e.yaml")
    assert str(caught.value).startswith("e.yaml:5: key 'session.events[0]")
    assert message in str(caught.value)


def test_events_must_be_a_list_and_calls_via_a_choice() -> None:
    with pytest.raises(ScenarioError, match=r"^e.yaml:3: key 'session.events': must be a list"):
        parse_scenario("version: 1\nsession:\n  events: {action: reload}\n", path="e.yaml")
    with pytest.raises(ScenarioError, match=r"'provider' is not allowed; use one of: request, sh"):
        parse_scenario("version: 1\nclient: {calls_via: provider}\n", path="e.yaml")


OLD_SESSION_KEYS = [
    "turns",
    "calls_per_turn",
    "idle_between_turns_ms",
    "stream",
    "concurrency",
    "abandon_streams",
    "gc",
]


@pytest.mark.parametrize(
    "path", [p for p in sorted(SCENARIOS.glob("*.yaml")) if p.stem not in NEW], ids=str
)
def test_a_scenario_without_events_serializes_as_before(path: Path) -> None:
    data = load_scenario(path).to_dict()
    assert list(data["session"]) == OLD_SESSION_KEYS
    assert list(data["client"]) == ["kwargs", "close_request_clients", "kind"]
    assert Scenario.from_dict(data) == load_scenario(path)


def test_a_sample_without_events_serializes_as_before() -> None:
    sample = SocketSample("turn 2", close_wait=1, established=2, fds=7, turn=2)
    assert sample.to_dict() == {
        "label": "turn 2",
        "close_wait": 1,
        "established": 2,
        "fds": 7,
        "turn": 2,
    }
    assert SocketSample.from_dict(sample.to_dict()) == sample
    marked = SocketSample("turn 2", 1, 2, 7, turn=2, events=("reload",))
    assert marked.to_dict()["events"] == ["reload"]
    assert SocketSample.from_dict(json.loads(json.dumps(marked.to_dict()))) == marked
    assert (turn_label(sample), turn_label(marked)) == ("2", "2 [reload]")


# --- the provider policies, without I/O ----------------------------------------------


class FakeClient:
    made = 0

    def __init__(self) -> None:
        FakeClient.made += 1
        self.name = f"c{FakeClient.made}"
        self.closed = False

    def __repr__(self) -> str:
        return self.name


def _lifecycle(policy: Any) -> Lifecycle:
    FakeClient.made = 0
    return Lifecycle(policy, FakeClient, lambda client: client.closed)


def _close(clients: list[Any]) -> list[str]:
    for client in clients:
        client.closed = True
    return [c.name for c in clients]


def test_keep_closes_and_keeps_the_closed_client() -> None:
    life = _lifecycle("keep")
    first = life.acquire()
    assert _close(life.release(first)) == []
    assert _close(life.terminate()) == ["c1"]
    assert life.acquire() is first and first.closed


def test_rebuild_builds_a_new_client_before_a_call_but_closes_one_in_flight() -> None:
    life = _lifecycle("rebuild")
    first = life.acquire()
    assert _close(life.terminate()) == ["c1"]  # under the call in flight
    assert _close(life.release(first)) == []
    second = life.acquire()
    assert (second.name, second.closed) == ("c2", False)


def test_swap_retires_and_closes_the_old_client_after_its_last_call() -> None:
    life = _lifecycle("swap")
    first, again = life.acquire(), life.acquire()
    assert _close(life.terminate()) == []  # two calls in flight on c1
    second = life.acquire()
    assert second.name == "c2"
    assert _close(life.release(first)) == []
    assert _close(life.release(again)) == ["c1"]
    assert _close(life.release(second)) == []
    assert _close(life.terminate()) == ["c2"]  # idle: closed at once
    assert life.acquire().name == "c3"
    assert _close(life.shutdown()) == ["c3"]


# --- both gateways, real sockets, real SDK -------------------------------------------

RELOAD = """\
version: 1
client: {kwargs: {max_retries: 0, timeout: 10}, calls_via: shared}
session:
  turns: 4
  concurrency: 2
  events: [{action: reload, after_turn: 2}]
"""
IN_FLIGHT = f"""\
version: 1
server:
  faults: [{{kind: stall, ms: 800, at: first_byte, calls: [3, 4]}}]
client: {{kwargs: {{max_retries: 0, timeout: 10}}, calls_via: shared}}
session:
  turns: 3
  concurrency: 2
  events: [{{action: terminate, during_turn: 2, at_ms: {AT_MS}}}]
"""


def _wait_for_calls(server: MockServer, count: int) -> None:
    until(
        lambda: server.stats().total_calls >= count,
        what=f"the server seeing {count} calls",
        timeout_s=POLL_LIMIT_S,
        interval_s=0.002,
    )


def _run_sync(text: str, variant: str) -> list[CallRecord]:
    scenario = parse_scenario(text)
    records: list[CallRecord] = []
    with MockServer(scenario.server) as server:

        def sleep(seconds: float) -> None:
            if seconds == AT_MS / 1000:  # in flight: both turn-2 calls reached the server
                _wait_for_calls(server, 4)
            else:
                time.sleep(seconds)

        gateway = Gateway(scenario, resolve_factory(variant, ROOT), server.base_url, sleep=sleep)
        gateway.open()
        try:
            gateway.run(on_call=records.append)
        finally:
            gateway.close()
    return records


def _run_async(text: str, variant: str) -> list[CallRecord]:
    scenario = parse_scenario(text)
    records: list[CallRecord] = []
    with MockServer(scenario.server) as server:

        async def sleep(seconds: float) -> None:
            if seconds == AT_MS / 1000:
                await asyncio.to_thread(_wait_for_calls, server, 4)
            else:
                await asyncio.sleep(seconds)

        opened = Gateway(scenario, resolve_factory(variant, ROOT), server.base_url)
        opened.open()
        gateway = AsyncGateway.adopt(opened, sleep=sleep)

        async def main() -> None:
            try:
                await gateway.run(on_call=records.append)
            finally:
                await gateway.close()

        asyncio.run(main())
    return records


def _failed_turns(records: list[CallRecord]) -> list[tuple[int, int]]:
    """(turn, failed calls) for every turn, in order."""
    turns = sorted({r.turn for r in records})
    return [(t, sum(1 for r in records if r.turn == t and not r.ok)) for t in turns]


RELOAD_FAILS = {
    "provider-keeps-closed": [(1, 0), (2, 0), (3, 2), (4, 2)],  # every call after the reload
    "provider-rebuild-on-closed": [(1, 0), (2, 0), (3, 0), (4, 0)],
    "provider-atomic-swap": [(1, 0), (2, 0), (3, 0), (4, 0)],
    "baseline": [(1, 0), (2, 0), (3, 2), (4, 2)],  # a plain client held across a reload
}
IN_FLIGHT_FAILS = {
    "provider-keeps-closed": [(1, 0), (2, 2), (3, 2)],
    "provider-rebuild-on-closed": [(1, 0), (2, 2), (3, 0)],  # the calls in flight only
    "provider-atomic-swap": [(1, 0), (2, 0), (3, 0)],
}
RUNNERS: dict[str, Callable[[str, str], list[CallRecord]]] = {"": _run_sync, "-async": _run_async}


@pytest.mark.sdk
@pytest.mark.parametrize("suffix", list(RUNNERS), ids=["sync", "async"])
@pytest.mark.parametrize("variant", list(RELOAD_FAILS))
def test_reload_between_turns(variant: str, suffix: str) -> None:
    records = RUNNERS[suffix](RELOAD, variant + suffix)
    assert _failed_turns(records) == RELOAD_FAILS[variant]
    failed = {r.error_chain[0] for r in records if not r.ok}
    assert failed <= {
        "RuntimeError: Cannot send a request, as the client has been closed.",
        "openai.APIConnectionError: Connection error.",  # openai 1.x/2.x wraps it
    }


@pytest.mark.sdk
@pytest.mark.parametrize("suffix", list(RUNNERS), ids=["sync", "async"])
@pytest.mark.parametrize("variant", list(IN_FLIGHT_FAILS))
def test_terminate_in_flight(variant: str, suffix: str) -> None:
    records = RUNNERS[suffix](IN_FLIGHT, variant + suffix)
    assert _failed_turns(records) == IN_FLIGHT_FAILS[variant]


# --- the terminate hook ----------------------------------------------------------------

HOOKED = """\
import openai

TERMINATED = []


def create_openai_client(client_kwargs, *, shared):
    return {cls}(**client_kwargs)


{kw}def terminate_openai_client(client, *, shared):
    TERMINATED.append(shared)
    {aw}client.close()
"""
TERMINATE_TWICE = """\
version: 1
session:
  turns: 3
  events: [{action: terminate, after_turn: 1}, {action: reload, after_turn: 2}]
"""


def _hooked(tmp_path: Path, *, is_async: bool, sync_client: bool = False) -> Any:
    cls = "openai.OpenAI" if sync_client or not is_async else "openai.AsyncOpenAI"
    text = HOOKED.format(cls=cls, kw="async " if is_async else "", aw="await " if is_async else "")
    name = f"hooked_{is_async}_{sync_client}.py"
    (tmp_path / name).write_text(text, encoding="utf-8")
    factory = resolve_factory(f"{name}:create_openai_client", tmp_path)
    return factory, sys.modules[factory.__module__]


@pytest.mark.sdk
def test_terminate_and_reload_use_the_sync_hook(tmp_path: Path) -> None:
    factory, module = _hooked(tmp_path, is_async=False)
    scenario = parse_scenario(TERMINATE_TWICE)
    records: list[CallRecord] = []
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, factory, server.base_url)
        gateway.open()
        gateway.run(on_call=records.append)
        gateway.close()
    assert module.TERMINATED == [True, True]  # the terminate, then the reload's
    assert [r.ok for r in records] == [True, True, True]  # request clients are fresh


@pytest.mark.sdk
def test_an_async_hook_is_awaited_by_the_async_gateway(tmp_path: Path) -> None:
    factory, module = _hooked(tmp_path, is_async=True)
    scenario = parse_scenario(TERMINATE_TWICE)
    with MockServer(scenario.server) as server:
        opened = Gateway(scenario, factory, server.base_url)
        opened.open()
        gateway = AsyncGateway.adopt(opened)

        async def main() -> None:
            await gateway.run()
            await gateway.close()

        asyncio.run(main())
    assert module.TERMINATED == [True, True]


@pytest.mark.sdk
def test_an_async_hook_for_a_sync_client_is_a_factory_error(tmp_path: Path) -> None:
    factory, _ = _hooked(tmp_path, is_async=True, sync_client=True)
    scenario = parse_scenario(TERMINATE_TWICE)
    with MockServer(scenario.server) as server:
        gateway = Gateway(scenario, factory, server.base_url)
        gateway.open()
        with pytest.raises(FactoryError, match="returned an awaitable for a sync client"):
            gateway.run()
        gateway.close()


def test_a_hook_with_the_wrong_signature_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "def create_openai_client(client_kwargs, *, shared):\n    return None\n\n\n"
        "def terminate_openai_client(client):\n    pass\n",
        encoding="utf-8",
    )
    with pytest.raises(FactoryError, match=r"terminate_openai_client\(client\) does not accept"):
        resolve_factory("bad.py:create_openai_client", tmp_path)


@pytest.mark.sdk
@pytest.mark.parametrize(
    ("variant", "ok"),
    [("baseline", [True, True, True]), ("keepalive-mutating", [True, False, False])],
)
def test_without_a_hook_terminate_closes_the_shared_client(variant: str, ok: list[bool]) -> None:
    """Per-request calls: closing the shared client takes the transport the #11070 factory
    planted in the kept kwargs with it, so every later request client fails."""
    text = (
        "version: 1\nclient: {kwargs: {max_retries: 0}, close_request_clients: false}\n"
        "session: {turns: 3, events: [{action: terminate, after_turn: 1}]}\n"
    )
    assert [r.ok for r in _run_sync(text, variant)] == ok


# --- through the worker: marks, harness_check and the bisect oracle -----------------


@pytest.mark.sdk
def test_the_event_turn_is_marked_in_samples_tables_and_reports() -> None:
    checked: Checked = check_factory(
        "provider-keeps-closed", SCENARIOS / "reload-between-turns.yaml", root=ROOT
    )
    result = checked.result
    marked = [(s.turn, s.events) for s in result.samples if s.events]
    assert marked == [(2, ("reload",))]
    assert event_marks(result) == "turn 2: reload"
    assert "\n2 [reload]  " in checked.explain()
    assert result.errors == 4 and not checked.healthy
    assert all("events" not in s for s in result.to_dict()["samples"] if s["turn"] != 2)
    entry = RegressEntry(result.scenario, result.variant, "", (result,), (checked.verdict,))
    summary = RegressSummary("r", "run", "2026-12-06T00:00:00Z", 1.0, (entry,), {})
    assert "\nLifecycle events: turn 2: reload\n" in render_markdown(summary)
    assert '<p class="flat">Lifecycle events: turn 2: reload</p>' in render_html(summary)


@pytest.mark.sdk
@pytest.mark.parametrize(
    ("variant", "scenario", "healthy"),
    [
        ("provider-rebuild-on-closed-async", "reload-between-turns", True),
        ("provider-atomic-swap-async", "terminate-in-flight", True),
        ("provider-rebuild-on-closed", "terminate-in-flight", False),
    ],
)
def test_harness_check_takes_the_scenarios(
    harness_check: Callable[..., Checked], variant: str, scenario: str, healthy: bool
) -> None:
    checked = harness_check(variant, scenario, expected="pass" if healthy else "fail")
    assert checked.healthy is healthy
    assert checked.verdict.as_expected


@pytest.mark.sdk
@pytest.mark.parametrize(
    ("variant", "code"), [("provider-atomic-swap", 0), ("provider-rebuild-on-closed", 1)]
)
def test_the_bisect_oracle_takes_the_scenarios(variant: str, code: int) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "check",
            "--scenario",
            str(SCENARIOS / "terminate-in-flight.yaml"),
            "--factory",
            variant,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr


# A gateway's own provider module: its terminate policy is what its history changes.
PROVIDER_MODULE = """\
from harness.variants._provider import make_sync, terminate


def create_openai_client(client_kwargs, *, shared):
    return make_sync(client_kwargs, shared=shared, policy={policy!r})


def terminate_openai_client(client, *, shared):
    terminate(client)
"""


def _provider_history(repo: Path, policies: list[str]) -> list[str]:
    """A git repository whose commit i holds a provider with ``policies[i]``; the shas."""
    env = {**git_env(), "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com"}
    env |= {"GIT_COMMITTER_NAME": "CI", "GIT_COMMITTER_EMAIL": "ci@example.com"}

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, check=True)
        return done.stdout.decode().strip()

    (repo / "gateway").mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main")
    shas = []
    for i, policy in enumerate(policies):
        source = PROVIDER_MODULE.format(policy=policy)
        (repo / "gateway" / "provider.py").write_text(source, encoding="utf-8")
        git("add", "-A")
        git("commit", "--quiet", "--no-verify", "--allow-empty", "-m", f"c{i}: provider {policy}")
        shas.append(git("rev-parse", "HEAD"))
    return shas


def test_bisect_takes_a_bundled_event_scenario_unchanged(tmp_path: Path) -> None:
    """The commit that replaced the atomic swap by rebuild-on-closed, found by the bundled
    in-flight scenario as it ships (named, not copied), a factory spec it does not list."""
    shas = _provider_history(tmp_path / "repo", ["swap", "rebuild", "rebuild"])
    reports = tmp_path / "reports"
    argv = ["--repo", str(tmp_path / "repo"), "--good", shas[0], "--bad", shas[2]]
    argv += ["--scenario", "terminate-in-flight", "--report-dir", str(reports)]
    argv += ["--factory", "gateway/provider.py:create_openai_client"]
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bisect", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"first bad commit: {shas[1]} 'c1: provider rebuild'" in done.stdout
    (run_dir,) = reports.glob("bisect-*")
    report = json.loads((run_dir / "bisect.json").read_text(encoding="utf-8"))
    for step in report["steps"]:  # the in-flight calls fail only where the provider rebuilds
        want = 0 if step["sha"] == shas[0] else 2
        assert step["metrics"]["errors"] == [want] * len(step["metrics"]["errors"]), step


@pytest.mark.sdk
def test_an_existing_scenario_writes_no_event_keys(tmp_path: Path) -> None:
    """Every file a run of a scenario without events writes, as before: no new keys."""
    reports = tmp_path / "reports"
    argv = ["run", str(SCENARIOS / "use-after-close.yaml"), "--variant", "keepalive-mutating"]
    assert main([*argv, "--json", str(tmp_path / "r.json"), "--report-dir", str(reports)]) == 0
    written = [tmp_path / "r.json", *sorted(p for p in reports.rglob("*") if p.is_file())]
    assert len(written) >= 4
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert '"events"' not in text and "calls_via" not in text, path
        assert "Lifecycle events" not in text, path
    samples = list(_samples(json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))))
    assert len(samples) == 8  # start, 4 turns, live after gc, after close, after gc
    assert {tuple(s) for s in samples} == {("label", "close_wait", "established", "fds", "turn")}


def _samples(data: Any) -> Any:
    """Every sample mapping in a results file, wherever it sits."""
    if isinstance(data, dict):
        if "samples" in data:
            yield from data["samples"]
        for value in data.values():
            if isinstance(value, dict | list):
                yield from _samples(value)
    elif isinstance(data, list):
        for item in data:
            yield from _samples(item)


# --- fallback: a second provider on a second mock server -----------------------------

FALLBACK = """\
version: 1
client: {{kwargs: {{max_retries: 0}}, close_request_clients: {close}, calls_via: {via}}}
session:
  turns: 3
  events: [{{action: terminate, after_turn: 1}}, {{action: fallback, after_turn: 1}}]
"""


def _run_fallback(text: str, variant: str, *, is_async: bool) -> tuple[list[bool], int, int]:
    """(ok per call, calls at the first server, calls at the fallback server)."""
    scenario = parse_scenario(text)
    records: list[CallRecord] = []
    with MockServer(scenario.server) as first, MockServer(scenario.server) as second:
        gateway = Gateway(
            scenario,
            resolve_factory(variant, ROOT),
            first.base_url,
            fallback_url=second.base_url,
        )
        gateway.open()
        if is_async:
            adopted = AsyncGateway.adopt(gateway)

            async def main() -> None:
                try:
                    await adopted.run(on_call=records.append)
                finally:
                    await adopted.close()

            asyncio.run(main())
        else:
            try:
                gateway.run(on_call=records.append)
            finally:
                gateway.close()
        calls = (first.stats().total_calls, second.stats().total_calls)
    return [r.ok for r in records], *calls


@pytest.mark.sdk
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("via", "variant", "expected"),
    [
        # Later calls reach the second server, around the terminated provider.
        ("shared", "provider-keeps-closed", ([True, True, True], 1, 2)),
        ("request-closed", "baseline", ([True, True, True], 1, 2)),
        # The fallback's kwargs copy the kept dict, and with it the planted transport that
        # the terminate closed: the fallback fails every call too, before any byte is sent.
        ("request", "keepalive-mutating", ([True, False, False], 1, 0)),
    ],
)
def test_fallback_routes_later_calls_to_the_second_server(
    via: str, variant: str, expected: tuple[list[bool], int, int], is_async: bool
) -> None:
    suffix = "-async" if is_async else ""
    text = FALLBACK.format(via=via.split("-")[0], close=str(via.endswith("closed")).lower())
    assert _run_fallback(text, variant + suffix, is_async=is_async) == expected


def test_a_fallback_without_a_second_server_is_a_usage_error() -> None:
    scenario = parse_scenario(FALLBACK.format(via="request", close="true"))
    gateway = Gateway(scenario, resolve_factory("baseline", ROOT), "http://127.0.0.1:9/v1")
    with pytest.raises(UsageError, match="a fallback event needs a second mock server"):
        gateway.fire(scenario.session.events[1])
    with pytest.raises(UsageError, match="refusing base_url"):
        Gateway(
            scenario,
            resolve_factory("baseline", ROOT),
            "http://127.0.0.1:9/v1",
            fallback_url="http://10.0.0.1/v1",
        )


@pytest.mark.sdk
def test_the_runner_starts_the_fallback_server(forks: Zygote | None) -> None:
    scenario = parse_scenario(FALLBACK.format(via="shared", close="true"), path="fallback.yaml")
    result = run_one(scenario, "provider-keeps-closed", root=ROOT, zygote=forks)
    assert (result.status, result.calls, result.errors) == ("completed", 3, 0)
    assert result.server.total_calls == 1  # turn 1; turns 2 and 3 went to the fallback
    assert event_marks(result) == "turn 1: terminate, fallback"


def test_a_factory_a_provider_scenario_does_not_name_is_observed_there() -> None:
    from harness import bundled

    reload = load_scenario(bundled.resolve("reload-between-turns"))
    spec = "gateway/clients.py:create_openai_client"
    assert reload.role_of(spec, named=False) == "observe"  # the default bundled set
    assert reload.role_of(spec, named=True) == "pass"  # `regress reload-between-turns`
    assert reload.role_of("provider-atomic-swap", named=False) == "pass"
    assert reload.role_of("keepalive-fixed", named=True) == "observe"  # variants: says so
    use_after_close = load_scenario(bundled.resolve("use-after-close"))
    assert use_after_close.role_of("my.mod:f", named=False) == "pass"
    clients = bundled.client_names()
    assert "use-after-close" in clients
    assert not {"reload-between-turns", "terminate-in-flight"} & set(clients)
