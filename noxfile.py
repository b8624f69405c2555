"""nox sessions: the main job (regress), compat (regress per SDK line), tests, lint, benchmarks,
the bisect driver, build (sdist and wheel, checked from a fresh virtualenv) and the report
screenshot in docs/.

uv is used to build the virtualenvs when it is installed; nox falls back to virtualenv.
Virtualenvs are reused between runs, so a warm `nox -s regress` skips the install.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]


@nox.session
def regress(session: nox.Session) -> None:
    """Run every bundled scenario across its variants; exit 1 if a verdict is unexpected."""
    session.install("-e", ".")
    session.run("python", "-m", "harness", "regress", "scenarios", *session.posargs)


# openai 3.x runs on httpx2/httpcore2, 1.x/2.x on httpx/httpcore. The whole suite runs on the
# newest line; the older lines run the tests marked `sdk`, whose outcome depends on the line.
OPENAI_LINES = {"3": "openai>=3", "2": "openai>=2,<3", "1": "openai>=1.40,<2"}
FULL_SUITE_LINE = "3"

TEST_JOBS = "8"  # xdist workers for one line unless TEST_JOBS says otherwise (see tests_on)


@nox.session
def compat(session: nox.Session) -> None:
    """regress on each openai SDK line, then one combined report in reports/<run-id>/.

    nox -s compat [-- --lines 3,2] [REGRESS ARGS]: the lines run one after another in this
    session's venv (openai reinstalled for each); the combined report's exit code decides
    (0 when every cell on every line is as expected). With one line, regress writes to
    reports/ itself (CI runs each line, and each --shard, as its own job and merges them).
    """
    try:
        lines, args = _compat_args(session.posargs)
    except ValueError as exc:
        session.error(str(exc))
    session.install("-e", ".")
    if len(lines) == 1:
        session.install(OPENAI_LINES[lines[0]])
        session.run("python", "-m", "harness", "regress", "scenarios", *args)
        return
    out = Path(session.create_tmp()) / "compat"
    shutil.rmtree(out, ignore_errors=True)  # never merge a previous invocation's results
    for line in lines:
        session.install(OPENAI_LINES[line])
        target = out / f"openai-{line}"
        # 1 (a cell not as expected) still yields results to merge; the merge exits 1 too,
        # and a line that wrote no results.json fails the merge (exit 2).
        session.run("python", "-m", "harness", "regress", "scenarios", *args,
                    "--report-dir", str(target), success_codes=[0, 1])  # fmt: skip
    results = [str(out / f"openai-{line}" / "latest" / "results.json") for line in lines]
    session.run("python", "-m", "harness", "report", "--merge", *results, "--out", "reports")


def _compat_args(posargs: list[str]) -> tuple[list[str], list[str]]:
    """(SDK lines, the rest for regress) from ``--lines 3,2`` (default: every line)."""
    args = list(posargs)
    lines = list(OPENAI_LINES)
    if "--lines" in args:
        at = args.index("--lines")
        lines = [x for x in args[at + 1].split(",") if x] if at + 1 < len(args) else []
        del args[at : at + 2]
    unknown = [x for x in lines if x not in OPENAI_LINES]
    if unknown or not lines:
        raise ValueError(f"--lines takes some of {','.join(OPENAI_LINES)}, got {lines}")
    return lines, args


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite on every openai line (what CI runs): the whole suite on the newest line,
    then the `sdk` tests on the older lines side by side, each line a `tests_on` session in
    a nox of its own. Arguments after `--` go to every line's pytest.

    Side by side, each older line gets half the xdist workers (TEST_JOBS, default 8): the
    machine runs as many at once as for one line, and the lines pay half the workers' start,
    collection and zygotes. With two busy loops beside them, the openai 2 and 1 lines took
    83-91 s side by side at `-n 4`, against 105-107 s one after the other at `-n 8`. Their
    output is kept until each ends, then printed whole.
    """
    nox_line = [sys.executable, "-m", "nox", "--noxfile", str(Path(__file__).resolve()), "-s"]
    older = [line for line in OPENAI_LINES if line != FULL_SUITE_LINE]
    failed = []
    session.log(f"openai {FULL_SUITE_LINE}: the whole suite")
    argv = [*nox_line, f"tests_on(openai='{FULL_SUITE_LINE}')", "--", *session.posargs]
    if subprocess.run(argv, check=False).returncode != 0:
        failed.append(FULL_SUITE_LINE)
    jobs = max(1, int(os.environ.get("TEST_JOBS", TEST_JOBS)) // len(older))
    session.log(f"openai {' and '.join(older)} side by side, {jobs} xdist workers each")
    commands = {line: [*nox_line, f"tests_on(openai='{line}')", "--", *session.posargs]
                for line in older}  # fmt: skip
    env = {**os.environ, "TEST_JOBS": str(jobs)}
    failed += _side_by_side(commands, Path(session.create_tmp()), env)
    if failed:
        session.error(f"the tests failed on openai {', '.join(failed)}")


def _side_by_side(commands: dict[str, list[str]], logs: Path, env: dict[str, str]) -> list[str]:
    """Run ``commands`` at once, each with its output in a file that is printed whole when
    it ends; the names of those that failed. They stay in this process group, so a Ctrl-C
    reaches each (and pytest cleans up); on any other way out of here, each one still
    running gets SIGINT, then SIGKILL after a grace period (SIGINT is ignored in a
    background job)."""
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name, argv in commands.items():
            log = logs / f"openai-{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            running[name] = proc, log
        failed = []
        for name, (proc, log) in running.items():
            if proc.wait() != 0:
                failed.append(name)
            sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
            sys.stdout.flush()
        return failed
    finally:
        left = [proc for proc, _ in running.values() if proc.poll() is None]
        for proc in left:
            proc.send_signal(signal.SIGINT)
        for proc in left:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@nox.session
@nox.parametrize("openai", list(OPENAI_LINES))
def tests_on(session: nox.Session, openai: str) -> None:
    """The test suite on one openai line (real sockets, the real openai SDK, real git
    repositories): the whole suite on the newest line, the tests marked `sdk` on the others.

    Arguments after `--` go to pytest after the defaults (a later `-m` replaces `-m sdk`).
    """
    # Hundreds of processes import openai (workers, zygotes, CLI children, pytest's own
    # workers): with PYTHONDONTWRITEBYTECODE set, as on many CI images, each would compile
    # openai from source (+0.5 s) and pytest would rewrite every test module (+5 s a worker).
    # So the tests write .pyc files, and one process imports what a worker imports first, so
    # that the eight pytest workers do not all compile the same modules at once. (Compiling
    # the whole venv at install time, UV_COMPILE_BYTECODE, compiles 3,100 files where the
    # tests import about 800: the openai 1 line from a new venv, 69-71 -> 64-66 CPU-s.)
    session.env["PYTHONDONTWRITEBYTECODE"] = None
    with _checkout_lock():  # `tests` runs two lines at once: one editable build at a time
        session.install("-e", ".[test]", OPENAI_LINES[openai])
    session.run("python", "-c", "from harness import zygote_process; zygote_process._preload()")
    select = [] if openai == FULL_SUITE_LINE else ["-m", "sdk", *_sdk_modules(session.posargs)]
    # Most tests wait on sockets, sleeps and child processes: eight xdist workers keep two
    # cores busy, on a loaded machine too, where more runnable workers take a larger share
    # of the cores (two busy loops beside it: the openai 3 line 177.4 -> 158.3 s at -n 6 ->
    # 8, 183.5 -> 166.3 s at -n 4 -> 6; `-- -n 0` runs them in this process, one after
    # another). A worker that runs out of tests takes some from a busy one (worksteal), so
    # the slow end-to-end tests do not leave the others idle at the end.
    parallel = ["-n", os.environ.get("TEST_JOBS", TEST_JOBS), "--dist", "worksteal"]
    session.run("python", "-m", "pytest", "--durations=20", *parallel, *select, *session.posargs)


@contextlib.contextmanager
def _checkout_lock() -> Iterator[None]:
    """Hold an exclusive lock on .nox/checkout.lock: an editable install builds in the
    checkout (setuptools writes lifecycle_harness.egg-info there), and two builds at once
    would write the same files."""
    Path(".nox").mkdir(exist_ok=True)
    with open(".nox/checkout.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _sdk_modules(posargs: list[str]) -> list[str]:
    """The test modules that mark a test `sdk`, which an older line needs to collect (every
    xdist worker collecting all the others to deselect them cost it about 3 CPU-s and 2.6 s);
    none (pytest's default) when the arguments name tests themselves."""
    if any(Path(arg.split("::")[0]).exists() for arg in posargs):
        return []
    modules = sorted(Path("tests").glob("test_*.py"))
    return [str(path) for path in modules if "mark.sdk" in path.read_text(encoding="utf-8")]


@nox.session
def screenshot(session: nox.Session) -> None:
    """A fresh regress of the bundled scenarios, its report.html rendered in headless
    Chromium into docs/report-screenshot.png (+ .json: the cells it shows, which
    tests/test_docs_screenshot.py checks against the bundled set). Needs Chromium on PATH."""
    session.install("-e", ".", OPENAI_LINES[FULL_SUITE_LINE])
    out = Path(session.create_tmp()) / "screenshot"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "harness", "regress", "scenarios", "--quiet",
                "--report-dir", str(out), *session.posargs, success_codes=[0, 1])  # fmt: skip
    session.run("python", "docs/screenshot.py", str(out / "latest"))


@nox.session
def golden(session: nox.Session) -> None:
    """Regenerate tests/data/results.json (the rendering tests' input) from a real run."""
    session.install("-e", ".", OPENAI_LINES[FULL_SUITE_LINE])
    session.run("python", "tests/data/make_golden.py", *session.posargs)


@nox.session
@nox.parametrize("openai", list(OPENAI_LINES))
def sdk_errors(session: nox.Session, openai: str) -> None:
    """What each sharing bug raises on one SDK line, sync and async (docs/factories.md)."""
    session.install("-e", ".", OPENAI_LINES[openai])
    session.run("python", "benchmarks/sdk_errors.py")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check), mypy --strict on harness/, and zizmor (the GitHub
    Actions security linter, offline) on the workflow and the reusable action."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "harness", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "harness")
    session.run("zizmor", "--offline", ".github/workflows/", "action.yml")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks that print figures (mock server throughput, regress wall time, bisect runs
    and right answers with flaky oracles, verdict stability under load: STABILITY_RUNS=5
    lowers its runs per cell from 20)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/bench_server.py")
    session.run("python", "benchmarks/bench_server_memory.py")  # 1,000,000 calls: minutes
    session.run("python", "benchmarks/bench_regress.py", *session.posargs)
    session.run("python", "benchmarks/bench_bisect.py")
    session.run("python", "benchmarks/bench_bisect_zygote.py")  # default oracle, forked or not
    session.run("python", "benchmarks/bench_bisect_install.py")  # pip and uv, local wheels
    session.run("python", "benchmarks/sim_bisect.py")  # the pure search, 500 seeds a row
    session.run("python", "benchmarks/bench_watch.py")  # watch: one sample, series memory
    session.run("python", "benchmarks/bench_shrink.py")  # real shrinks, deterministic and flaky
    runs = os.environ.get("STABILITY_RUNS", "20")
    session.run("python", "benchmarks/bench_stability.py", "--runs", runs)


@nox.session
def bisect(session: nox.Session) -> None:
    """Forward to `harness bisect`: nox -s bisect -- --repo PATH --good A --bad B ..."""
    session.install("-e", ".")
    session.run("python", "-m", "harness", "bisect", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """sdist and wheel in dist/ (the wheel built from the sdist), `twine check --strict`, then
    tests/wheel_smoke.py: the wheel in a fresh virtualenv, run from an empty folder (bundled
    scenarios by name, `harness regress` with no path, docs/pytest.md's example).

    nox -s build [-- --quick]: --quick leaves out the full `harness regress` (minutes).
    Needs uv on PATH (the smoke test's virtualenv).
    """
    session.install("build", "twine")
    shutil.rmtree("dist", ignore_errors=True)  # only this build's files are checked
    session.run("python", "-m", "build", "--outdir", "dist")
    session.run("twine", "check", "--strict", *sorted(str(p) for p in Path("dist").iterdir()))
    wheel = str(next(Path("dist").glob("lifecycle_harness-*.whl")))
    full = [] if "--quick" in session.posargs else ["--full"]
    session.run("python", "tests/wheel_smoke.py", wheel, *full)
