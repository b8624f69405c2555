"""harness.launch: which launcher serves a run, and a fresh interpreter's worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.environment import worker_env
from harness.launch import FreshInterpreter, launcher_for
from harness.messages import EXIT_USAGE
from harness.zygote import Zygote, usable


def test_without_a_zygote_a_run_gets_a_fresh_interpreter(tmp_path: Path) -> None:
    assert launcher_for(sys.executable, tmp_path, None) == FreshInterpreter(
        sys.executable, tmp_path, worker_env(os.environ)
    )


@pytest.mark.skipif(not usable(), reason="needs fork and pidfd_open (Linux)")
def test_a_zygote_forks_in_the_runs_folder_when_it_serves_it(tmp_path: Path) -> None:
    with Zygote(python=sys.executable, root=tmp_path, env=worker_env(os.environ)) as zygote:
        other = tmp_path / "other"
        other.mkdir()
        assert launcher_for(sys.executable, other, zygote) == zygote.at(other)
        assert launcher_for("/usr/bin/python3.99", other, zygote) == FreshInterpreter(
            "/usr/bin/python3.99", other, worker_env(os.environ)
        )


def test_an_unstarted_zygote_serves_nothing(tmp_path: Path) -> None:
    # An unstarted Zygote is a plain value: no process is involved in the choice.
    zygote = Zygote(python=sys.executable, root=tmp_path, env=worker_env(os.environ))
    assert launcher_for(sys.executable, tmp_path, zygote) == FreshInterpreter(
        sys.executable, tmp_path, worker_env(os.environ)
    )


def test_a_fresh_interpreter_runs_the_worker_with_its_stderr_in_the_file(tmp_path: Path) -> None:
    launcher = FreshInterpreter(sys.executable, Path.cwd(), worker_env(os.environ))
    stderr = tmp_path / "stderr.txt"
    with launcher.launch(tmp_path / "missing.json", stderr) as child:
        assert child.wait() == EXIT_USAGE
    assert stderr.read_text(encoding="utf-8").startswith(
        f"harness worker: error: job file {str(tmp_path / 'missing.json')!r} is unusable: "
        "FileNotFoundError: "
    )
