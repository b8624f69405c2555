"""Factory adapters kept outside the repository (an absolute path), for run, check, regress
and bisect: the adapter imports the checkout under test and calls a method of a class whose
``__init__`` never runs, as docs/factories.md shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

AGENT = '''"""A gateway whose client factory is a method of a class too costly to construct."""
from typing import Any

import openai


class Agent:
    def __init__(self) -> None:
        raise RuntimeError("needs a config file, a database and 4.6 s of imports")

    def _create_openai_client(self, client_kwargs: dict[str, Any], *, shared: bool) -> Any:
        {body}
'''
HEALTHY = "return openai.OpenAI(**dict(client_kwargs))"
MUTATING = (
    'client_kwargs.setdefault("http_client", openai.DefaultHttpxClient())\n'
    "        return openai.OpenAI(**client_kwargs)"
)

ADAPTER = '''"""Adapter: build the factory from the checkout under test (first on sys.path)."""
from typing import Any

import gateway.agent


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> Any:
    agent = object.__new__(gateway.agent.Agent)  # skip __init__
    return agent._create_openai_client(client_kwargs, shared=shared)
'''

SCENARIO = """\
version: 1
client:
  kwargs: {max_retries: 0, timeout: 5}
  close_request_clients: true
session:
  turns: 3
expect:
  errors: 0
"""


def write_checkout(root: Path, body: str) -> Path:
    (root / "gateway").mkdir(parents=True, exist_ok=True)
    (root / "gateway" / "__init__.py").write_text("", encoding="utf-8")
    (root / "gateway" / "agent.py").write_text(AGENT.format(body=body), encoding="utf-8")
    return root


@pytest.fixture
def adapter(tmp_path: Path) -> str:
    path = tmp_path / "adapters" / "gateway_adapter.py"
    path.parent.mkdir()
    path.write_text(ADAPTER, encoding="utf-8")
    return f"{path}:create_openai_client"


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "uac.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def test_check_and_run_use_the_checkout_under_test(
    adapter: str, scenario: Path, tmp_path: Path
) -> None:
    healthy = write_checkout(tmp_path / "healthy", HEALTHY)
    mutating = write_checkout(tmp_path / "mutating", MUTATING)
    base = ["check", "--scenario", str(scenario), "--factory", adapter]
    assert main([*base, "--root", str(healthy)]) == 0
    assert main([*base, "--root", str(mutating)]) == 1
    out = tmp_path / "run.json"
    reports = tmp_path / "reports"
    run = ["run", str(scenario), "--factory", adapter, "--root", str(mutating)]
    main([*run, "--json", str(out), "--report-dir", str(reports)])
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["entries"][0]["runs"][0]["errors"] == 2


def test_regress_names_the_adapter_in_the_scenario(
    adapter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "uac.yaml").write_text(
        SCENARIO + f'variants:\n  "{adapter}": fail\n', encoding="utf-8"
    )
    mutating = write_checkout(tmp_path / "mutating", MUTATING)
    reports = tmp_path / "reports"
    code = main(["regress", str(folder), "--root", str(mutating), "--report-dir", str(reports)])
    assert code == 0, capsys.readouterr().out
    assert "1 cell, 1 as expected, 0 not" in capsys.readouterr().out


def test_bisect_with_an_adapter_outside_the_repository(
    adapter: str, scenario: Path, tmp_path: Path
) -> None:
    repo = write_checkout(tmp_path / "repo", HEALTHY)
    git = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    subprocess.run([*git, "init", "--quiet", "--initial-branch=main"], cwd=repo, check=True)
    shas = []
    for i, body in enumerate([HEALTHY, HEALTHY, MUTATING, MUTATING]):
        write_checkout(repo, body)
        (repo / "NOTES.md").write_text(f"{i}\n", encoding="utf-8")
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "--quiet", "-m", f"c{i}"], cwd=repo, check=True)
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        )
        shas.append(head.stdout.strip())
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "bisect",
            "--repo",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            shas[3],
            "--scenario",
            str(scenario),
            "--factory",
            adapter,
            "--report-dir",
            str(reports),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(next(reports.glob("bisect-*/bisect.json")).read_text(encoding="utf-8"))
    assert report["result"]["sha"] == shas[2]


# --- a method with extra parameters that reads attributes: the documented adapter -----------

AI_AGENT = '''"""A gateway agent shaped like a real one: a large class whose __init__ cannot run
in a test, and whose client factory takes a keyword-only `reason` and reads attributes."""
import logging
from typing import Any

import openai

logger = logging.getLogger(__name__)


class AIAgent:
    def __init__(self, config_path: str) -> None:
        raise RuntimeError(f"reads {{config_path}}, opens the session database, starts threads")

    def run_conversation(self, message: str) -> str:
        raise NotImplementedError("the agent loop: not what the harness tests")

    def _create_openai_client(
        self, client_kwargs: dict[str, Any], *, reason: str, shared: bool
    ) -> openai.OpenAI:
        self._clients_made += 1
        logger.info(
            "client %d for %s/%s: %s", self._clients_made, self.provider, self.model, reason
        )
        headers = {{"X-Title": f"{{self.provider}}/{{self.model}}"}}
        {body}
'''
AI_HEALTHY = "return openai.OpenAI(**dict(client_kwargs), default_headers=headers)"
AI_MUTATING = (
    'client_kwargs.setdefault("http_client", openai.DefaultHttpxClient())\n'
    "        return openai.OpenAI(**client_kwargs, default_headers=headers)"
)


def documented_adapter(name: str) -> str:
    """The code block of docs/factories.md whose first line names ``name``."""
    text = (Path(__file__).parent.parent / "docs" / "factories.md").read_text(encoding="utf-8")
    blocks = text.split("```python\n")[1:]
    return next(b.split("```")[0] for b in blocks if b.startswith(f"# /home/me/adapters/{name}"))


def test_the_documented_adapter_passes_reason_and_sets_attributes(
    scenario: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapters" / "gateway_agent_adapter.py"
    adapter.parent.mkdir()
    adapter.write_text(documented_adapter("gateway_agent_adapter.py"), encoding="utf-8")
    spec = f"{adapter}:create_openai_client"
    simple = tmp_path / "adapters" / "gateway_adapter.py"
    simple.write_text(
        documented_adapter("gateway_adapter.py").replace("Agent)", "AIAgent)"), encoding="utf-8"
    )
    roots = {}
    for name, body in (("healthy", AI_HEALTHY), ("mutating", AI_MUTATING)):
        root = tmp_path / name
        (root / "gateway").mkdir(parents=True)
        (root / "gateway" / "__init__.py").write_text("", encoding="utf-8")
        agent = AI_AGENT.format(body=body)
        (root / "gateway" / "agent.py").write_text(agent, encoding="utf-8")
        roots[name] = root
    base = ["check", "--scenario", str(scenario)]
    assert main([*base, "--factory", spec, "--root", str(roots["healthy"])]) == 0
    assert main([*base, "--factory", spec, "--root", str(roots["mutating"])]) == 1
    # the plain adapter cannot call this method: untestable, never called healthy or bad
    out = tmp_path / "plain.json"
    plain = [*base, "--factory", f"{simple}:create_openai_client", "--json", str(out)]
    assert main([*plain, "--root", str(roots["healthy"])]) == 125
    reasons = json.loads(out.read_text(encoding="utf-8"))["entries"][0]["verdicts"][0]["reasons"]
    assert any("missing 1 required keyword-only argument: 'reason'" in r for r in reasons), reasons
