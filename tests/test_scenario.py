"""Schema v1: defaults, the full example, and every error path with its file:line."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import (
    ClientSpec,
    Expectations,
    HttpError,
    Keepalive,
    Reply,
    ResetOnReuse,
    Scenario,
    ServerSpec,
    SessionSpec,
    Stall,
    TruncateStream,
    load_scenario,
    parse_scenario,
    planned_duration_s,
)
from harness.variants import BUNDLED, PROVIDERS, module_name

FULL = """\
version: 1
name: idle-reap-fin
description: Provider reaps idle keep-alive connections with a FIN after 50 ms.
server:
  api: chat.completions
  reply: {text: "pong", chunks: 3, chunk_delay_ms: 0}
  latency_ms: 0
  keepalive:
    idle_timeout_ms: 50
    close: fin
  faults:
    - {kind: reset_on_reuse, mode: rst}
    - {kind: http_error, status: 429, retry_after_s: 0.05, calls: [4, 3]}
    - {kind: stall, ms: 6000, at: first_byte, calls: [5]}
    - {kind: truncate_stream, after_chunks: 2, calls: [7]}
client:
  kwargs: {max_retries: 2, timeout: 10}
  close_request_clients: true
session:
  turns: 10
  calls_per_turn: 1
  idle_between_turns_ms: 120
  stream: false
  concurrency: 1
  abandon_streams: false
  gc: off
expect:
  errors: 0
  retries: 0
  close_wait_peak: 0
  close_wait_growth: 0
variants:
  baseline: pass
  keepalive-mutating: fail
  keepalive-fixed: pass
"""


def test_full_example_from_the_architecture_doc(tmp_path: Path) -> None:
    path = tmp_path / "idle.yaml"
    path.write_text(FULL)
    s = load_scenario(path)
    assert s.name == "idle-reap-fin"
    assert s.path == str(path)
    assert s.server == ServerSpec(
        api="chat.completions",
        reply=Reply(text="pong", chunks=3, chunk_delay_ms=0),
        latency_ms=0,
        keepalive=Keepalive(idle_timeout_ms=50, close="fin"),
        faults=(
            ResetOnReuse(mode="rst", calls=None),
            HttpError(status=429, retry_after_s=0.05, calls=(3, 4)),
            Stall(ms=6000, at="first_byte", calls=(5,)),
            TruncateStream(after_chunks=2, calls=(7,)),
        ),
    )
    assert dict(s.client.kwargs) == {"max_retries": 2, "timeout": 10.0}
    assert s.session == SessionSpec(turns=10, idle_between_turns_ms=120)
    assert s.expect == Expectations(errors=0, retries=0, close_wait_peak=0, close_wait_growth=0)
    assert dict(s.variants) == {
        "baseline": "pass",
        "keepalive-mutating": "fail",
        "keepalive-fixed": "pass",
    }


def test_only_version_is_required_and_defaults_apply(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yaml"
    path.write_text("version: 1\n")
    s = load_scenario(path)
    assert s.name == "minimal"
    assert (s.server, s.client, s.session, s.expect) == (
        ServerSpec(),
        ClientSpec(),
        SessionSpec(),
        Expectations(),
    )
    assert dict(s.variant_expectations()) == {
        "baseline": "pass",
        "keepalive-mutating": "observe",
        "keepalive-fixed": "pass",
        "shared-http-client": "observe",
        "baseline-async": "pass",
        "keepalive-mutating-async": "observe",
        "keepalive-fixed-async": "pass",
        "shared-http-client-async": "observe",
        "provider-keeps-closed": "observe",
        "provider-rebuild-on-closed": "observe",
        "provider-atomic-swap": "pass",
        "provider-keeps-closed-async": "observe",
        "provider-rebuild-on-closed-async": "observe",
        "provider-atomic-swap-async": "pass",
    }


EVENTS = "version: 1\nsession: {turns: 2, events: [{action: reload, after_turn: 1}]}\n"


def test_an_event_scenario_without_variants_observes_the_client_factory_variants() -> None:
    """Without a terminate hook a client factory cannot pass a lifecycle event: only the
    provider variants keep their roles (the fixed ones pass)."""
    roles = parse_scenario(EVENTS, path="e.yaml").variant_expectations()
    assert set(roles) == set(BUNDLED)
    assert {name for name, role in roles.items() if role == "pass"} == {
        "provider-atomic-swap",
        "provider-atomic-swap-async",
    }


def test_providers_are_the_variants_with_a_terminate_hook() -> None:
    hooked = {
        name
        for name in BUNDLED
        if hasattr(importlib.import_module(module_name(name)), "terminate_openai_client")
    }
    assert hooked == PROVIDERS


@pytest.mark.parametrize(
    ("text", "named", "role"),
    [
        (EVENTS, True, "pass"),  # named: judged, events or not
        (EVENTS, False, "observe"),  # the default set: an event scenario observes it
        ("version: 1\n", False, "pass"),
        (EVENTS + 'variants: {"g.py:f": fail}\n', True, "fail"),  # variants: wins
        (EVENTS + 'variants: {"g.py:f": pass}\n', False, "pass"),
        ('version: 1\nvariants: {"g.py:f": observe}\n', True, "observe"),
    ],
)
def test_the_role_of_a_factory(text: str, named: bool, role: str) -> None:
    assert parse_scenario(text, path="s.yaml").role_of("g.py:f", named=named) == role


def test_a_factory_named_like_a_bundled_variant_is_judged_by_variants_only() -> None:
    """The implicit roles of a scenario without `variants:` are the plan's, not a factory's."""
    plain = parse_scenario("version: 1\n", path="s.yaml")
    assert plain.variant_expectations()["keepalive-mutating"] == "observe"
    assert plain.role_of("keepalive-mutating", named=False) == "pass"


def test_scenario_is_frozen_and_serializable() -> None:
    s = parse_scenario(FULL, path="x.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]
    data = s.to_dict()
    assert data["client"]["kwargs"] == {"max_retries": 2, "timeout": 10.0}
    assert data["server"]["faults"][1] == {
        "status": 429,
        "retry_after_s": 0.05,
        "calls": [3, 4],
        "kind": "http_error",
    }
    assert isinstance(s, Scenario)


def test_calls_all_and_null_values() -> None:
    s = parse_scenario(
        "version: 1\nserver:\n  keepalive: {idle_timeout_ms: null}\n"
        "  faults:\n    - {kind: stall, calls: all}\nexpect:\n  errors: null\n"
    )
    assert s.server.keepalive.idle_timeout_ms is None
    assert s.server.faults == (Stall(calls=None),)
    assert s.expect.errors is None


ERRORS = [
    ("", 1, "version", "the file is empty"),
    ("name: x\n", 1, "version", "missing; add `version: 1`"),
    ("version: 2\n", 1, "version", "2 is not supported; use 1"),
    ("version: 1\nsesion: {}\n", 2, "sesion", "unknown key; allowed here: version, name"),
    ("version: 1\nsession:\n  turns: 0\n", 3, "session.turns", "0 is out of range; allowed"),
    ("version: 1\nsession:\n  turns: ten\n", 3, "session.turns", "must be an integer"),
    ("version: 1\nsession:\n  turns: 2.5\n", 3, "session.turns", "must be an integer"),
    ("version: 1\nsession:\n  stream: maybe\n", 3, "session.stream", "true or false"),
    ("version: 1\nsession:\n  gc: sometimes\n", 3, "session.gc", "use one of: off, auto"),
    ("version: 1\nsession: 3\n", 2, "session", "must be a mapping"),
    (
        "version: 1\nsession:\n  abandon_streams: true\n",
        3,
        "session.abandon_streams",
        "needs `stream: true`",
    ),
    ("version: 1\nserver:\n  api: completions\n", 3, "server.api", "chat.completions"),
    (
        "version: 1\nserver:\n  keepalive: {close: later}\n",
        3,
        "server.keepalive.close",
        "fin, rst, silent",
    ),
    (
        "version: 1\nserver:\n  faults:\n    - {kind: boom}\n",
        4,
        "server.faults[0].kind",
        "reset_on_reuse, http_error, stall, truncate_stream",
    ),
    ("version: 1\nserver:\n  faults:\n    - {ms: 3}\n", 4, "server.faults[0].kind", "missing"),
    (
        "version: 1\nserver:\n  faults:\n    - {kind: stall, status: 500}\n",
        4,
        "server.faults[0].status",
        "allowed here: kind, calls, ms, at",
    ),
    (
        "version: 1\nserver:\n  faults:\n    - {kind: http_error, status: 200}\n",
        4,
        "server.faults[0].status",
        "allowed 400..599",
    ),
    (
        "version: 1\nserver:\n  faults:\n    - {kind: stall, calls: [0]}\n",
        4,
        "server.faults[0].calls",
        "use integers >= 1",
    ),
    ("version: 1\nserver:\n  faults: {kind: stall}\n", 3, "server.faults", "must be a list"),
    ("version: 1\nclient:\n  kwargs: {api_key: x}\n", 3, "client.kwargs.api_key", "allowed"),
    ("version: 1\nclient:\n  kwargs: {timeout: -1}\n", 3, "client.kwargs.timeout", "range"),
    ("version: 1\nexpect:\n  errors: -1\n", 3, "expect.errors", "out of range"),
    ("version: 1\nvariants:\n  nope: pass\n", 3, "variants.nope", "unknown variant"),
    ("version: 1\nvariants:\n  baseline: maybe\n", 3, "variants.baseline", "pass, fail"),
    ("version: 1\nvariants: {}\n", 2, "variants", "list at least one variant"),
    ("version: 1\nversion: 1\n", 2, "version", "duplicate key"),
    ("version: 1\nsession: [\n", 3, "", "not valid YAML"),
]


# --- hostile files: every one a one-line error at its line, never a crash ------------------

DEEP_FLOW = "version: 1\nsession: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_BLOCK = "version: 1\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(40)) + "\n"
HOSTILE = [
    (DEEP_FLOW, 2, "", "nested deeper than 16 levels"),
    (DEEP_BLOCK, 18, "", "nested deeper than 16 levels"),
    ("version: 1\nname: !Sub x\n", 2, "", "the tag '!Sub' is not allowed"),
    ("version: 1\nsession: !Ref {turns: 3}\n", 2, "", "the tag '!Ref' is not allowed"),
    (
        "version: 1\nsession:\n  turns: !!int three\n",
        3,
        "session.turns",
        "cannot read 'three' as int",
    ),
    ("version: 1\nserver:\n  latency_ms: !!float fast\n", 3, "server.latency_ms", "as float"),
    ("version: 1\nname: !!binary aGk=\n", 2, "", "the tag 'tag:yaml.org,2002:binary'"),
    ("version: 1\nname: !!python/name:os.system x\n", 2, "", "is not allowed"),
    ("version: 1\nsession:\n  turns: " + "9" * 5000 + "\n", 3, "session.turns", "cannot read"),
    (
        "version: 1\nexpect:\n  errors: " + "1" * 5000 + "\n",
        3,
        "expect.errors",
        "(5000 characters)",
    ),
    (
        "version: 1\nserver:\n  latency_ms: 1.0e+5000\n",
        3,
        "server.latency_ms",
        "inf is out of range",
    ),
    ("version: 1\nexpect:\n  p95_latency_ms: .inf\n", 3, "expect.p95_latency_ms", "out of range"),
    ("version: 1\nserver:\n  latency_ms: .nan\n", 3, "server.latency_ms", "nan is out of range"),
    ("version: yes\n", 1, "version", "'yes' is not supported; use 1"),
    ("version: true\n", 1, "version", "'true' is not supported; use 1"),
    ("version: 1.0\n", 1, "version", "1.0 is not supported; use 1"),
    ("version: 1\nsession:\n  turns: yes\n", 3, "session.turns", "must be an integer, got True"),
    ("version: 1\nsession:\n  concurrency: on\n", 3, "session.concurrency", "got True"),
    ("version: 1\nexpect:\n  errors: false\n", 3, "expect.errors", "got False"),
    ("version: 1\nreply: 1\n---\nversion: 1\n", 3, "", "not valid YAML"),
    ("version: 1\nvariants:\n  baseline: yes\n", 3, "variants.baseline", "True is not allowed"),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), ERRORS + HOSTILE)
def test_errors_name_file_line_and_key(text: str, line: int, key: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, path="bad.yaml")
    err = info.value
    assert (err.path, err.line, err.key) == ("bad.yaml", line, key)
    assert fragment in err.message
    assert "\n" not in str(err) and len(str(err)) < 300  # also for 5000-digit values
    assert str(err).startswith(f"bad.yaml:{line}: ")


def test_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")


def test_user_factory_spec_is_allowed_as_variant() -> None:
    s = parse_scenario("version: 1\nvariants:\n  mygw/factory.py:make: fail\n")
    assert dict(s.variants) == {"mygw/factory.py:make": "fail"}


def test_bundled_scenarios_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent / "scenarios"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        scenario = load_scenario(path)
        assert scenario.description, f"{path} has no description"


def test_client_kind_is_any_sync_or_async() -> None:
    assert parse_scenario("version: 1\n").client.kind == "any"
    assert parse_scenario("version: 1\nclient: {kind: async}\n").client.kind == "async"
    with pytest.raises(ScenarioError) as err:
        parse_scenario("version: 1\nclient:\n  kind: threads\n", path="k.yaml")
    assert str(err.value) == (
        "k.yaml:3: key 'client.kind': 'threads' is not allowed; use one of: any, sync, async"
    )


def test_nesting_within_the_limit_is_judged_by_the_schema() -> None:
    text = "version: 1\nsession: " + "[" * 15 + "]" * 15 + "\n"
    with pytest.raises(ScenarioError, match="key 'session': must be a mapping, got a list"):
        parse_scenario(text)


def test_aliases_are_read_as_their_value() -> None:
    s = parse_scenario("version: 1\nsession:\n  turns: &n 3\n  calls_per_turn: *n\n")
    assert (s.session.turns, s.session.calls_per_turn) == (3, 3)


# --- the schema declares each default and range once -----------------------------------


def test_ranges_in_errors_come_from_the_schema() -> None:
    meta = {f.name: f.metadata for f in dataclasses.fields(SessionSpec)}["concurrency"]
    assert (meta["lo"], meta["hi"]) == (1, 256)
    with pytest.raises(ScenarioError, match=r"257 is out of range; allowed 1\.\.256$"):
        parse_scenario("version: 1\nsession: {concurrency: 257}\n")


def test_every_expectation_key_is_accepted() -> None:
    keys = [f.name for f in dataclasses.fields(Expectations)]
    assert "close_wait_live_after_gc" in keys and "sdk_retries" in keys
    text = "version: 1\nexpect:\n" + "".join(f"  {k}: 7\n" for k in keys)
    assert parse_scenario(text).expect == Expectations(**dict.fromkeys(keys, 7))


@pytest.mark.parametrize(
    "text", [FULL, "version: 1\n", "version: 1\nclient: {kwargs: {timeout: 3}}\n"]
)
def test_from_dict_rebuilds_the_validated_value(text: str) -> None:
    s = parse_scenario(text, path="x.yaml")
    again = Scenario.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    assert again.to_dict() == s.to_dict()
    assert isinstance(again.server.faults, tuple)


def test_from_dict_refuses_what_the_schema_does_not_declare() -> None:
    data = parse_scenario(FULL, path="x.yaml").to_dict()
    with pytest.raises(KeyError, match="extra"):
        Scenario.from_dict({**data, "extra": 1})
    with pytest.raises(TypeError, match="name"):
        Scenario.from_dict({k: v for k, v in data.items() if k != "name"})
    faults = [{**data["server"]["faults"][0], "kind": "teleport"}]
    with pytest.raises(ValueError, match="teleport"):
        Scenario.from_dict({**data, "server": {**data["server"], "faults": faults}})
    with pytest.raises(TypeError, match="ServerSpec: expected a mapping, got list"):
        Scenario.from_dict({**data, "server": []})


# --- planned duration ---------------------------------------------------------------------

ABSURD = "version: 1\nsession:\n  turns: 100000\n  idle_between_turns_ms: 3600000\n"


def test_planned_duration_counts_gaps_latency_chunks_and_stalls() -> None:
    s = parse_scenario(
        "version: 1\nserver:\n  latency_ms: 100\n  reply: {chunks: 4, chunk_delay_ms: 50}\n"
        "  faults:\n    - {kind: stall, ms: 1000, calls: [2, 3]}\n"
        "    - {kind: http_error, status: 429, retry_after_s: 2, calls: [1]}\n"
        "session: {turns: 5, calls_per_turn: 2, idle_between_turns_ms: 300, stream: true}\n"
    )
    # gaps 5 x 0.3 + calls 10 x (0.1 + 4 x 0.05) + stalls 2 x 1 + retry-after 1 x 2
    assert planned_duration_s(s) == pytest.approx(1.5 + 3.0 + 2.0 + 2.0)


def test_an_absurd_duration_is_refused_unless_the_limit_is_raised(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(ABSURD, path="long.yaml")
    assert str(info.value) == (
        "long.yaml:2: key 'session': plans to run 360,000,000 s, over the limit of 600 s; "
        "lower turns, gaps or delays, or raise the limit with --max-duration SECONDS"
    )
    assert parse_scenario(ABSURD, max_duration_s=4e8).session.turns == 100_000
    path = tmp_path / "long.yaml"
    path.write_text(ABSURD)
    with pytest.raises(ScenarioError, match="over the limit of 10 s"):
        load_scenario(path, max_duration_s=10)


def test_resolved_hints_read_back_every_bundled_scenario_without_resolving_more() -> None:
    # A fresh interpreter (this one's cache is warm): the zygote resolves the hints once, so
    # that no forked run resolves them again reading its job's scenario back.
    code = (
        "from pathlib import Path\n"
        "from harness.fields import _hints, resolve_hints\n"
        "from harness.scenario import load_scenario\n"
        "from harness.schema import Scenario\n"
        "texts = [load_scenario(p).to_dict() for p in sorted(Path('scenarios').glob('*.yaml'))]\n"
        "_hints.cache_clear()\n"
        "resolve_hints(Scenario)\n"
        "resolved = _hints.cache_info().misses\n"
        "for data in texts:\n"
        "    Scenario.from_dict(data)\n"
        "print(len(texts), resolved, _hints.cache_info().misses)\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    scenarios, resolved, after = map(int, done.stdout.split())
    assert scenarios >= 8 and resolved > 5
    assert after == resolved
