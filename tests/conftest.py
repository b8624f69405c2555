"""Fixtures more than one module uses."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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
