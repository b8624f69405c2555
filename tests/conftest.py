"""Fixtures more than one module uses."""

from __future__ import annotations

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
