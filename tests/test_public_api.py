"""The public surface: what `import harness` hands out, used as a user uses it."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest

import harness


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its stdout, stripped."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def test_a_scenario_served_and_counted_through_the_public_names_only() -> None:
    scenario = harness.parse_scenario("version: 1\nserver: {reply: {text: hi}}\n", path="s.yaml")
    with harness.MockServer(scenario.server) as server:
        client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)
        with client:
            reply = client.chat.completions.create(model="m", messages=[])
        stats = server.stats()
    assert reply.choices[0].message.content == "hi"
    assert [(call.path, call.status) for call in stats.calls] == [("/v1/chat/completions", 200)]


def test_bad_input_is_one_scenario_error_a_caller_catches_as_a_harness_error() -> None:
    with pytest.raises(harness.HarnessError) as raised:
        harness.parse_scenario("version: 9\n", path="s.yaml")
    assert type(raised.value) is harness.ScenarioError
    assert str(raised.value) == "s.yaml:1: key 'version': 9 is not supported; use 1"


def test_star_import_binds_every_export_in_a_fresh_interpreter() -> None:
    code = (
        "from harness import *\n"
        "import harness, types\n"
        "names = [k for k, v in globals().items() if not k.startswith('_')"
        " and not isinstance(v, types.ModuleType)]\n"
        "print(sorted(names) == sorted(harness.__all__))"
    )
    assert _fresh(code) == "True"


def test_importing_harness_loads_a_module_only_when_a_name_from_it_is_used() -> None:
    code = (
        "import sys, harness\n"
        "def loaded(): return sorted(m for m in sys.modules if m.startswith('harness.'))\n"
        "print(loaded())\n"
        "harness.judge\n"
        "print('harness.mockserver' in sys.modules, 'harness.verdict' in sys.modules)\n"
        "print(harness.judge is sys.modules['harness.verdict'].judge)"
    )
    assert _fresh(code).splitlines() == ["[]", "False True", "True"]


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = harness.nope  # type: ignore[attr-defined]


def test_worker_import_does_not_load_server_reports_or_matrix() -> None:
    code = (
        "import sys, harness.worker; "
        "print(sorted(m for m in ('harness.mockserver', 'harness.report', 'harness.matrix') "
        "if m in sys.modules))"
    )
    assert _fresh(code) == "[]"
