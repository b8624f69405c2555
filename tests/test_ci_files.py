"""The CI files parse, stay in step with the noxfile, and the action's shell steps work.

GitHub itself cannot run here: these tests parse the YAML, check the matrices against
OPENAI_LINES, and run the action's own install-line mapping and Regress step under bash with
the environment GitHub would give them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _openai_lines() -> dict[str, str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OPENAI_LINES":
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("noxfile.py defines no OPENAI_LINES")


def _step(action: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in action["runs"]["steps"] if s.get("name") == name)


def test_workflow_matrices_follow_the_noxfile() -> None:
    ci = _load(ROOT / ".github" / "workflows" / "ci.yml")
    jobs = ci["jobs"]
    assert list(jobs) == ["lint", "tests", "regress", "compat-report", "action"]
    lines = list(_openai_lines())
    assert jobs["tests"]["strategy"]["matrix"]["openai"] == lines
    assert jobs["regress"]["strategy"]["matrix"]["openai"] == lines
    assert jobs["regress"]["strategy"]["matrix"]["shard"] == list(range(1, ci["env"]["SHARDS"] + 1))
    assert jobs["compat-report"]["needs"] == "regress"
    assert [s.get("uses") for s in jobs["action"]["steps"]][1] == "./"


def test_action_inputs_and_its_sdk_lines() -> None:
    action = _load(ROOT / "action.yml")
    assert action["runs"]["using"] == "composite"
    assert list(action["inputs"]) == [
        "scenarios", "factory", "root", "sdk-line", "python-version", "args", "artifact-name"
    ]  # fmt: skip
    script = _step(action, "Install the harness and the openai SDK line")["run"]
    for line, requirement in _openai_lines().items():
        assert f'{line}) sdk="{requirement}" ;;' in script


def test_the_action_regress_step_runs_and_reports(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "one.yaml").write_text(
        "version: 1\nsession: {turns: 2}\nexpect: {errors: 0}\nvariants: {baseline: pass}\n"
    )
    step = _step(_load(ROOT / "action.yml"), "Regress")
    output, summary, temp = tmp_path / "output", tmp_path / "summary.md", tmp_path / "runner"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "SCENARIOS": str(folder),
        "FACTORY": "harness/variants/keepalive_fixed.py:create_openai_client",
        "ROOT": str(ROOT),
        "ARGS": "--repeat 1 --quiet",
        "REPORTS": str(temp / "lifecycle-reports"),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    run_dir = (temp / "lifecycle-reports" / "latest").resolve()
    assert output.read_text() == f"exit-code=0\nreport-dir={run_dir}\n"
    assert done.stdout == f"{temp / 'lifecycle-reports' / run_dir.name}\n"
    assert summary.read_text() == (run_dir / "summary.md").read_text()
    assert (
        "| harness/variants/keepalive_fixed.py:create_openai_client (sync) | pass | pass | yes |"
        in (summary.read_text())
    )


def test_the_action_refuses_an_unknown_sdk_line_before_installing() -> None:
    step = _step(_load(ROOT / "action.yml"), "Install the harness and the openai SDK line")
    env = {"PATH": os.environ["PATH"], "SDK_LINE": "4", "HARNESS_SOURCE": "/nonexistent"}
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout) == (
        2,
        "::error::sdk-line must be 3, 2, 1 or empty, got '4'\n",
    )
