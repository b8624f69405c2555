"""nox sessions: the main job (regress), tests, lint, benchmarks and the bisect driver.

uv is used to build the virtualenvs when it is installed; nox falls back to virtualenv.
Virtualenvs are reused between runs, so a warm `nox -s regress` skips the install.
"""

from __future__ import annotations

import os

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


@nox.session
@nox.parametrize("openai", list(OPENAI_LINES))
def tests(session: nox.Session, openai: str) -> None:
    """The test suite (real sockets, the real openai SDK, real git repositories).

    Arguments after `--` go to pytest after the defaults (a later `-m` replaces `-m sdk`).
    """
    session.install("-e", ".[test]", OPENAI_LINES[openai])
    select = [] if openai == FULL_SUITE_LINE else ["-m", "sdk"]
    session.run("python", "-m", "pytest", "--durations=20", *select, *session.posargs)


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
    """ruff (lint and format check) and mypy --strict on harness/."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "harness", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "harness")


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
    runs = os.environ.get("STABILITY_RUNS", "20")
    session.run("python", "benchmarks/bench_stability.py", "--runs", runs)


@nox.session
def bisect(session: nox.Session) -> None:
    """Forward to `harness bisect`: nox -s bisect -- --repo PATH --good A --bad B ..."""
    session.install("-e", ".")
    session.run("python", "-m", "harness", "bisect", *session.posargs)
