"""Small promises of the first screen: a run id tells the start time, a run budget the bounds
cannot fit is refused up front."""

from __future__ import annotations

from datetime import datetime

import pytest

from harness.cli import main
from harness.commands._common import start


def test_the_run_id_is_stamped_when_the_run_starts() -> None:
    begun = start("regress")
    stamp, command = begun.run_id.split("-", 1)
    when = datetime.strptime(stamp[:15], "%Y%m%dT%H%M%S")
    started = datetime.fromisoformat(begun.started).replace(tzinfo=None)
    assert command == "regress"
    assert abs((when - started).total_seconds()) <= 1  # seconds apart at most, never the run


def test_max_runs_below_two_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bisect", "--repo", ".", "--good", "a", "--bad", "b", "--scenario", "s.yaml",
            "--factory", "f.py:g", "--max-runs", "1"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(
        "argument --max-runs: '1' is too few: each bound takes one run; pass 2 or more\n"
    )
