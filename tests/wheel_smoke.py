"""Install a lifecycle-harness wheel into a fresh virtualenv and use it from an empty folder.

    python tests/wheel_smoke.py [WHEEL] [--full]

Checks, each a real process in a folder holding nothing of the checkout, with no PYTHONPATH:
the harness is imported from the new virtualenv and finds its bundled scenarios inside it;
``harness scenarios`` lists exactly the scenarios the wheel holds; ``harness run
use-after-close --variant keepalive-mutating`` exits 0 (the scenario expects that variant to
be caught, and it is); ``harness check --scenario use-after-close`` exits 0 on the fixed
variant; ``harness regress use-after-close`` exits 0; and docs/pytest.md's complete example,
written into the folder with a fixed factory, passes under the venv's pytest. ``--full`` also
runs ``harness regress`` with no path (every bundled scenario; minutes, not seconds).

Without WHEEL, one is built from this checkout with ``uv build``. The virtualenv is made with
uv (``uv venv``, ``uv pip install``): dependencies come from the package index as usual.
Prints one line per check and exits 0 when all pass, 1 at the first failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
DOC = CHECKOUT / "docs" / "pytest.md"
FIXED_FACTORY = """\
import openai


def create_openai_client(client_kwargs, *, shared):
    kwargs = dict(client_kwargs)
    kwargs.setdefault("http_client", openai.DefaultHttpxClient())
    return openai.OpenAI(**kwargs)
"""
TIMEOUT_S = 900  # a bound against a hang, not a speed check


class SmokeFailure(Exception):
    """A check failed; the message says which and shows the process's output."""


def build_wheel(out: Path) -> Path:
    """A wheel of this checkout, built with ``uv build`` into ``out``."""
    _call(["uv", "build", "--wheel", "--out-dir", str(out), str(CHECKOUT)], cwd=out)
    return next(out.glob("lifecycle_harness-*.whl"))


def make_venv(wheel: Path, venv: Path) -> Path:
    """A fresh virtualenv holding ``wheel`` and pytest; returns its Python."""
    _call(["uv", "venv", "--quiet", "-p", sys.executable, str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    _call(["uv", "pip", "install", "--quiet", "-p", str(python), str(wheel), "pytest"], venv.parent)
    return python


def bundled_in(wheel: Path) -> list[str]:
    """The scenario names the wheel holds (``harness/_scenarios/NAME.yaml``)."""
    with zipfile.ZipFile(wheel) as archive:
        found = (re.fullmatch(r"harness/_scenarios/(.+)\.yaml", n) for n in archive.namelist())
        return sorted(m[1] for m in found if m)


def example(language: str) -> str:
    """The code block of ``language`` in docs/pytest.md's complete example."""
    text = DOC.read_text(encoding="utf-8").split("## Complete example", 1)[1]
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)[0]


def write_project(folder: Path) -> None:
    """docs/pytest.md's example project, with a fixed factory, in ``folder``."""
    (folder / "mygateway").mkdir()
    (folder / "mygateway" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "mygateway" / "clients.py").write_text(FIXED_FACTORY, encoding="utf-8")
    (folder / "tests").mkdir()
    (folder / "tests" / "lifecycle.yaml").write_text(example("yaml"), encoding="utf-8")
    (folder / "tests" / "test_client_lifecycle.py").write_text(example("python"), "utf-8")
    (folder / "pytest.ini").write_text("[pytest]\npythonpath = .\n", encoding="utf-8")


def smoke(wheel: Path, work: Path, *, full: bool, report: Callable[[str], None]) -> None:
    """Run every check (see the module docstring); ``report`` gets one line per passed check,
    with the seconds it took."""
    lines = _Lines(report)
    python = make_venv(wheel, work / "venv")
    lines.append("a fresh venv holds the wheel and pytest")
    harness = [str(python.parent / "harness")]
    empty = work / "empty"
    empty.mkdir()
    where = _call([str(python), "-c", _WHERE], cwd=empty).split()
    venv = str(work / "venv")
    _expect(all(p.startswith(venv) for p in where), f"imported outside the venv: {where}")
    lines.append(f"harness and its scenarios come from the venv: {where[1]}")
    names = bundled_in(wheel)
    listed = _call([*harness, "scenarios"], cwd=empty)
    shown = sorted(re.findall(r"^([a-z0-9-]+): ", listed, re.MULTILINE))
    _expect(shown == names and len(names) > 0, f"scenarios lists {shown}, the wheel {names}")
    lines.append(f"harness scenarios: the wheel's {len(names)} scenarios")
    out = _call([*harness, "run", "use-after-close", "--variant", "keepalive-mutating"], empty)
    _expect("verdict: FAIL" in out and "expected fail" in out, f"run said:\n{out}")
    lines.append("harness run use-after-close --variant keepalive-mutating: caught, exit 0")
    check = ["check", "--scenario", "use-after-close", "--factory", "keepalive-fixed"]
    _call([*harness, *check], cwd=empty)
    lines.append("harness check --scenario use-after-close --factory keepalive-fixed: exit 0")
    _call([*harness, "regress", "use-after-close", "--quiet"], cwd=empty)
    lines.append("harness regress use-after-close: exit 0")
    if full:
        _call([*harness, "regress", "--quiet"], cwd=empty)
        lines.append("harness regress (every bundled scenario): exit 0")
    project = work / "project"
    project.mkdir()
    write_project(project)
    out = _call([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    passed = re.search(r"(\d+) passed", out)
    # harness_scenario runs the scenarios that judge a client factory: the provider ones
    # (with session.events) judge a terminate hook, which the example's factory lacks.
    judged = _call([str(python), "-c", _CLIENT_SCENARIOS], cwd=empty).split()
    _expect(passed is not None and int(passed[1]) == len(judged) + 3, f"pytest said:\n{out}")
    lines.append(f"docs/pytest.md's example: {passed[1] if passed else 0} passed")


class _Lines:
    """Hands each line to ``report`` with the seconds since the previous one."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report
        self._t = time.monotonic()

    def append(self, line: str) -> None:
        now = time.monotonic()
        self._report(f"{line} ({now - self._t:.1f} s)")
        self._t = now


# What the venv's Python imports: the harness package and the bundled scenarios' folder.
_WHERE = "import harness, harness.bundled as b; print(harness.__file__, b.directory())"
_CLIENT_SCENARIOS = "import harness.bundled as b; print(*b.client_names())"


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def _call(argv: Sequence[str], cwd: Path) -> str:
    """Run ``argv`` in ``cwd`` with no PYTHONPATH or active virtualenv; its stdout, or
    SmokeFailure (with the output) unless it exits 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if done.returncode != 0:
        raise SmokeFailure(
            f"{' '.join(argv)} (in {cwd}) exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, nargs="?", help="default: build one with uv")
    parser.add_argument("--full", action="store_true", help="also run `harness regress`")
    ns = parser.parse_args(argv)
    if shutil.which("uv") is None:
        print("wheel_smoke: uv is not on PATH; install it (pip install uv)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as tmp:
        work = Path(tmp)
        wheel = ns.wheel.resolve() if ns.wheel else build_wheel(work)
        try:
            smoke(wheel, work, full=ns.full, report=lambda line: print(f"ok: {line}"))
        except SmokeFailure as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    print(f"wheel smoke test passed: {wheel.name} in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
