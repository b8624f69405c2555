"""``bisect --install`` in a private virtualenv: the harness's own environment and the user's
clone are exactly as before, the install runs only where the dependency files changed, and
every step records the openai/httpx/httpx2 it ran on.

The project pins ``gwpin``, a tiny package built here as wheels in a local folder (no test
needs the network), at 2.x, while the harness's environment (a virtualenv made for the test
that sees this interpreter's packages) holds gwpin 1.0."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_bisect import (
    HEALTHY,
    MUTATING,
    PURELIB,
    SCENARIO,
    _checker_venv,
    _commit,
    _new_repo,
    add_submodule,
    only_report,
    repo_state,
    runs_of,
)

from harness.bisect.installenv import dependency_key, is_dependency_file, venv_env

CHECKOUT = Path(__file__).resolve().parent.parent
FACTORY = "gateway/factory.py:create_openai_client"
PIN_CHECK = """import gwpin

EXPECTED = {version!r}  # the version requirements.txt pins at this commit
if gwpin.VERSION != EXPECTED:
    raise ImportError(f"gwpin {{gwpin.VERSION}} installed, this commit pins {{EXPECTED}}")
"""


RUNS_LOG = "runs.log"  # beside the repository: test_bisect.RECORD's line for each run


def _runs(tmp_path: Path) -> list[tuple[int, int]]:
    return runs_of(tmp_path / RUNS_LOG)


def _forked(runs: list[tuple[int, int]]) -> list[bool]:
    """Which runs forked from a zygote (its frozen imports), not a fresh interpreter."""
    return [frozen > 0 for frozen, _ in runs]


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module ``name`` with ``VERSION = version``."""
    folder.mkdir(exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        record += f"{path},sha256={base64.urlsafe_b64encode(digest).rstrip(b'=').decode()},"
        record += f"{len(text.encode())}\n"
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def freeze(python: Path) -> list[str]:
    """What ``pip freeze`` lists, for an interpreter that may have no pip: every
    distribution it can import, with its version and location."""
    code = (
        "import importlib.metadata as m\n"
        "for d in m.distributions(): print(d.metadata['Name'], d.version, d.locate_file(''))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return sorted(out.stdout.splitlines())


def _site_packages(venv: Path) -> Path:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PURELIB], capture_output=True, text=True, check=True
    )
    return Path(done.stdout.strip())


@pytest.fixture
def harness_venv(tmp_path: Path) -> Path:
    """The harness's environment for the test: sees this interpreter's packages, plus gwpin
    1.0 installed into its own site-packages (unpacked, as an installer would)."""
    venv = _checker_venv(tmp_path / "harness-venv")
    with zipfile.ZipFile(build_wheel(tmp_path / "old-wheels", "gwpin", "1.0")) as zf:
        zf.extractall(_site_packages(venv))
    return venv


@pytest.fixture
def installed_harness_venv(harness_venv: Path) -> Path:
    """``harness_venv`` with the harness installed as a wheel leaves it: the package and its
    .dist-info in the venv's site-packages, beside gwpin 1.0 (run from outside the checkout,
    nothing else on the path holds a ``harness``)."""
    site = _site_packages(harness_venv)
    shutil.copytree(CHECKOUT / "harness", site / "harness", ignore=shutil.ignore_patterns("__py*"))
    dist = site / f"lifecycle_harness-{importlib.metadata.version('lifecycle-harness')}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: lifecycle-harness\nVersion: {dist.stem.split('-')[1]}\n",
        encoding="utf-8",
    )
    return harness_venv


def _project(
    tmp_path: Path, pins: list[str], mutate_from: int, *, dead_submodule: bool = False
) -> tuple[Path, list[str]]:
    """One commit per pin: requirements.txt pins gwpin at it, the factory refuses to import
    on any other version, and mutates the caller's dict from commit ``mutate_from`` on (each
    run appends how its worker started to the file :func:`_bisect` names in RUNS_LOG). With
    ``dead_submodule``, the first commit adds submodule ``vendored`` from a local repository
    that is deleted at the end: nothing can fetch it."""
    repo = _new_repo(tmp_path / "repo")
    if dead_submodule:
        source = _new_repo(tmp_path / "vendored-src")
        _commit(source, "vendored 1", README="vendored\n")
        add_submodule(repo, source)
    shas = []
    for i, pin in enumerate(pins):
        factory = (HEALTHY if i < mutate_from else MUTATING).format(i=i)
        files = {
            "requirements.txt": f"gwpin=={pin}\n",
            "gateway/__init__.py": "",
            "gateway/factory.py": PIN_CHECK.format(version=pin) + factory,
            "NOTES.md": f"revision {i}\n",
        }
        shas.append(_commit(repo, f"c{i}", **files))
    (repo / "scratch.txt").write_text("untracked\n", encoding="utf-8")
    if dead_submodule:
        shutil.rmtree(tmp_path / "vendored-src")
    return repo, shas


def _bisect(
    python: Path, repo: Path, shas: list[str], tmp_path: Path, install: str, *, cwd: Path = CHECKOUT
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    reports = tmp_path / "reports"
    done = subprocess.run(
        [str(python), "-m", "harness", "bisect", "--repo", str(repo), "--good", shas[0],
         "--bad", shas[-1], "--scenario", str(scenario), "--factory", FACTORY,
         "--install", install, "--report-dir", str(reports)],
        capture_output=True, text=True, timeout=400, check=False, cwd=cwd,
        # UV_PYTHON aimed at the harness's env (as nox sets it): uv must still install into
        # the private venv, which freeze() before and after checks
        env={**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
             "UV_PYTHON": str(python), "RUNS_LOG": str(tmp_path / RUNS_LOG)},
    )  # fmt: skip
    run_dir = only_report(reports)
    return done, json.loads((run_dir / "bisect.json").read_text(encoding="utf-8")), run_dir


def _expected_installs(report: dict[str, Any], pins: list[str], shas: list[str]) -> list[str]:
    """ "ran" where a call's pin differs from the last installed one, else "skipped"."""
    out, last = [], None
    for step in report["steps"]:
        pin = pins[shas.index(step["sha"])]
        out.append("ran" if pin != last else "skipped")
        last = pin
    return out


def _sdk_versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    return {name: version(name) for name in ("openai", "httpx", "httpx2")}


PIP_INSTALL = (
    'echo "$HARNESS_PYTHON" && "$HARNESS_PYTHON" -m pip install -q --no-index '
    "--disable-pip-version-check --find-links {wheels} -r requirements.txt"
)


def test_install_runs_in_a_private_venv_once_when_the_dependencies_never_change(
    tmp_path: Path, harness_venv: Path
) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "gwpin", "2.0")
    pins = ["2.0"] * 4
    repo, shas = _project(tmp_path, pins, mutate_from=2)
    python = harness_venv / "bin" / "python"
    env_before, repo_before = freeze(python), repo_state(repo)
    done, report, run_dir = _bisect(python, repo, shas, tmp_path, PIP_INSTALL.format(wheels=wheels))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["result"]["sha"] == shas[2] and report["skipped"] == []
    installs = [s["install"] for s in report["steps"]]
    assert installs == ["ran"] + ["skipped"] * (len(installs) - 1)
    # the call that installed ran fresh; one zygote, started after it, served every other
    runs = _runs(tmp_path)
    assert len(runs) == len(installs) and _forked(runs) == [False] + [True] * (len(runs) - 1)
    assert len({zygote for _, zygote in runs[1:]}) == 1
    assert all(s["packages"] == _sdk_versions() for s in report["steps"])
    # the venv the install ran in: private, and gone
    first_log = run_dir / report["steps"][0]["files"]["install_log"]
    venv_python = Path(first_log.read_text(encoding="utf-8").splitlines()[0])
    assert venv_python.name == "python" and venv_python.parent.parent.name == "venv"
    assert venv_python.parent.parent.parent.name.startswith("harness-bisect-")
    assert not venv_python.parent.parent.parent.exists()
    assert freeze(python) == env_before  # gwpin 1.0 still, nothing added or removed
    assert repo_state(repo) == repo_before
    markdown = (run_dir / "bisect.md").read_text(encoding="utf-8")
    versions = " / ".join(_sdk_versions().values())
    assert f"| ran | {versions} |" in markdown and f"| skipped | {versions} |" in markdown
    assert f"over 1 of {len(installs)} calls" in markdown


def test_install_runs_again_where_the_dependency_files_change(
    tmp_path: Path, harness_venv: Path
) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "gwpin", "2.0")
    build_wheel(wheels, "gwpin", "2.1")
    pins = ["2.0", "2.0", "2.1", "2.1"]
    repo, shas = _project(tmp_path, pins, mutate_from=3)
    python = harness_venv / "bin" / "python"
    env_before, repo_before = freeze(python), repo_state(repo)
    install = PIP_INSTALL.format(wheels=wheels)
    if shutil.which("uv"):  # uv installs into $VIRTUAL_ENV: the private venv
        install = install.replace('"$HARNESS_PYTHON" -m pip', "uv pip").replace(
            "--disable-pip-version-check ", ""
        )
    done, report, _ = _bisect(python, repo, shas, tmp_path, install)
    assert done.returncode == 0, done.stdout + done.stderr
    # every factory checked gwpin's version at import: a wrong one would be a skip
    assert report["result"]["sha"] == shas[3] and report["skipped"] == []
    installs = [s["install"] for s in report["steps"]]
    assert installs == _expected_installs(report, pins, shas)
    assert installs.count("ran") >= 2  # the bounds pin different versions
    # each install ended the zygote and its call ran fresh; the next call that installed
    # nothing forked from a new zygote, which served the calls up to the next install
    runs = _runs(tmp_path)
    assert len(runs) == len(installs)
    assert _forked(runs) == [install == "skipped" for install in installs]
    zygotes = [zygote if frozen else None for frozen, zygote in runs]
    for i in range(1, len(runs)):
        if installs[i] == "skipped":  # a new zygote exactly after an install
            assert (zygotes[i] == zygotes[i - 1]) == (installs[i - 1] == "skipped")
    assert freeze(python) == env_before
    assert repo_state(repo) == repo_before


def test_an_installed_harness_does_not_shadow_the_projects_pins(
    tmp_path: Path, installed_harness_venv: Path
) -> None:
    """From a wheel install the harness's folder is a site-packages: were it first on the
    oracle's and workers' PYTHONPATH, the gwpin 1.0 beside it would hide the venv's 2.0 and
    every commit would be untestable (as openai 3 hid a project's openai<3). The project
    also has a submodule nobody can fetch: the issue's case, with the documented command."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "gwpin", "2.0")
    pins = ["2.0"] * 4
    repo, shas = _project(tmp_path, pins, mutate_from=2, dead_submodule=True)
    python = installed_harness_venv / "bin" / "python"
    env_before, repo_before = freeze(python), repo_state(repo)
    install = PIP_INSTALL.format(wheels=wheels)
    if shutil.which("uv"):  # no pip to seed: seconds, not a minute
        install = install.replace('"$HARNESS_PYTHON" -m pip', "uv pip").replace(
            "--disable-pip-version-check ", ""
        )
    outside = tmp_path / "elsewhere"  # `-m harness` from the checkout would import its copy
    outside.mkdir()
    done, report, _ = _bisect(python, repo, shas, tmp_path, install, cwd=outside)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["result"]["sha"] == shas[2] and report["skipped"] == []
    assert [u["name"] for u in report["unfetched_submodules"]] == ["vendored"]
    assert [s["install"] for s in report["steps"]].count("ran") == 1
    # after the install, the runs fork from a zygote on the installed harness
    assert _forked(_runs(tmp_path)) == [s["install"] == "skipped" for s in report["steps"]]
    assert freeze(python) == env_before
    assert repo_state(repo) == repo_before


def test_dependency_files_are_recognised_by_name() -> None:
    yes = [
        "pyproject.toml",
        "requirements.txt",
        "requirements-dev.txt",
        "requirements/base.txt",
        "requirements/test.in",
        "sub/pkg/setup.py",
        "setup.cfg",
        "uv.lock",
        "poetry.lock",
        "Pipfile",
        "Pipfile.lock",
        "constraints.txt",
    ]
    no = ["README.md", "gateway/factory.py", "docs/requirements.md", "notes/setup.txt"]
    assert [p for p in yes + no if is_dependency_file(p)] == yes
    files = {"uv.lock": "b1", "gateway/x.py": "b2", "pyproject.toml": "b3"}
    assert dependency_key(files) == (("pyproject.toml", "b3"), ("uv.lock", "b1"))
    assert dependency_key({**files, "gateway/x.py": "changed"}) == dependency_key(files)


def test_venv_env_aims_the_checker_environment_at_the_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {"PATH": f"/usr/bin{os.pathsep}{venv}/bin", "PYTHONHOME": "/x", "KEEP": "1"}
    # nox sets UV_PYTHON to its own venv: uv would install there instead of VIRTUAL_ENV
    env |= {"UV_PYTHON": "/nox/venv", "UV_PROJECT_ENVIRONMENT": "/nox/venv", "CONDA_PREFIX": "/c"}
    assert venv_env(env, venv) == {
        "PATH": f"{venv}/bin{os.pathsep}/usr/bin",
        "HARNESS_PYTHON": f"{venv}/bin/python",
        "VIRTUAL_ENV": str(venv),
        "KEEP": "1",
    }
