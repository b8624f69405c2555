"""Fixtures more than one module uses."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import runner
from harness.commands import check, regress, shrink
from harness.launch import Launcher
from harness.zygote import Zygote, workers_for

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def forks() -> Iterator[Zygote | None]:
    """This test process's zygote, for in-process runs in any folder: a forked worker
    measures what a fresh one does (tests/test_zygote.py) and skips the second or so of CPU
    a fresh one spends importing openai. Runs whose environment differs from the zygote's
    start a fresh interpreter, as in the product."""
    with workers_for(CHECKOUT) as zygote:
        yield zygote


@pytest.fixture
def killed_tmpdir() -> Iterator[Path]:
    """A TMPDIR for a harness process the test kills with SIGKILL: the run folders and the
    zygote's socket folder it can no longer remove go with the test, not into /tmp. Short
    (directly in the system's temporary folder), so a zygote's socket path fits in it."""
    path = Path(tempfile.mkdtemp(prefix="harness-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def forked_runs(forks: Zygote | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run the test starts in-process (``main(["run", ...])``, ``check``, ``regress``,
    ``shrink``, ``check_factory``) forks from ``forks`` where it serves the run, instead of
    starting a fresh interpreter or a zygote of its own that spends a second importing
    openai: for tests of what the commands print, write and return. How a worker starts has
    its own tests (test_launch.py, test_runner.py, test_zygote.py), which do not use this."""
    fresh_or = runner.launcher_for

    def launcher_for(python: str, root: Path, zygote: Zygote | None) -> Launcher:
        return fresh_or(python, root, zygote or forks)

    @contextlib.contextmanager
    def shared(root: Path, *, fresh: bool = False) -> Iterator[Zygote | None]:
        yield forks

    monkeypatch.setattr(runner, "launcher_for", launcher_for)
    for command in (check, regress, shrink):
        monkeypatch.setattr(command, "workers_for", shared)
