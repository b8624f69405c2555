"""The CI files parse, stay in step with the noxfile, and the action's shell steps work.

GitHub itself cannot run here: these tests parse the YAML, check the matrices against
OPENAI_LINES, and run the action's own install-line mapping and Regress step under bash with
the environment GitHub would give them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
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


def test_every_sdk_test_is_in_a_module_the_older_lines_collect(
    request: pytest.FixtureRequest,
) -> None:
    """noxfile.py's older SDK lines collect only the modules whose text says `mark.sdk`: a
    test marked `sdk` some other way (a hook, a plugin) would never run there. (Checks what
    this session collected: the whole suite on the openai 3 line.)"""
    marked = {item.path for item in request.session.items if item.get_closest_marker("sdk")}
    assert all("mark.sdk" in path.read_text(encoding="utf-8") for path in marked)


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


CI_FILES = (ROOT / ".github" / "workflows" / "ci.yml", ROOT / "action.yml")
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")


def _uses_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if "uses:" in line]


def test_every_action_is_pinned_by_full_commit_sha_with_its_version() -> None:
    pinned: dict[str, str] = {}
    for path in CI_FILES:
        for line in _uses_lines(path):
            if line.split("uses:", 1)[1].split()[0] == "./":
                continue  # this repository's own action, from this checkout
            match = PINNED.match(line)
            assert match is not None, f"{path.name}: not pinned by SHA with a version: {line}"
            # One version of each action across both files.
            assert pinned.setdefault(match[1], match[2]) == match[2], line
    assert sorted(pinned) == [
        "EnricoMi/publish-unit-test-result-action",
        "actions/checkout",
        "actions/download-artifact",
        "actions/setup-python",
        "actions/upload-artifact",
    ]


def test_checkouts_keep_no_credentials_and_jobs_ask_only_for_their_permissions() -> None:
    ci = _load(ROOT / ".github" / "workflows" / "ci.yml")
    assert ci["permissions"] == {}
    writers = {"tests", "compat-report"}  # they publish JUnit check runs and comments
    for name, job in ci["jobs"].items():
        expected = {"contents": "read"}
        if name in writers:
            expected |= {"checks": "write", "pull-requests": "write"}
        if name == "compat-report":
            expected["actions"] = "read"
        assert job["permissions"] == expected, name
        checkouts = [
            s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
        ]
        assert checkouts, name
        for step in checkouts:
            assert step["with"]["persist-credentials"] is False, name


def test_no_expression_is_expanded_inside_a_run_script() -> None:
    # A caller's input or a step output expanded into a script becomes shell code: they
    # reach scripts through `env:` (matrix values are this file's own constants).
    ci = _load(ROOT / ".github" / "workflows" / "ci.yml")
    steps = [s for job in ci["jobs"].values() for s in job["steps"]]
    steps += _load(ROOT / "action.yml")["runs"]["steps"]
    for step in steps:
        script = step.get("run", "")
        leftover = re.sub(r"\$\{\{ (matrix|env)\.[\w-]+ \}\}", "", script)
        assert "${{" not in leftover, script


def test_the_lint_session_runs_zizmor_offline_on_both_files() -> None:
    source = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert 'session.run("zizmor", "--offline", ".github/workflows/", "action.yml")' in source
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"zizmor>=1.33"' in pyproject


def test_zizmor_finds_nothing() -> None:
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is not installed (pip install -e '.[lint]')")
    done = subprocess.run(
        [zizmor, "--offline", "--format", "json", ".github/workflows/", "action.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, json.loads(done.stdout)) == (0, []), done.stderr
