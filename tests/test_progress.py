"""Terminal output of regress: plain lines off a TTY (byte-exact), a live display on a TTY
(run under a real pseudo-terminal), --quiet and --json."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tty import ANSI, run_in_pty

from harness.progress import Live, choose_mode
from harness.report import load_summary
from harness.report.text import render_regress

# Two cells of about a second each: long enough for the live display to redraw while one runs.
SCENARIO = """\
version: 1
session: {turns: 3, idle_between_turns_ms: 300}
expect: {errors: 0}
variants: {baseline: pass, keepalive-fixed: pass}
"""


# Where nothing needs to redraw: one turn per cell, no gap.
QUICK = SCENARIO.replace("{turns: 3, idle_between_turns_ms: 300}", "{turns: 1}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "scenarios"
    path.mkdir()
    (path / "slowish.yaml").write_text(SCENARIO)
    return path


@pytest.fixture
def quick(tmp_path: Path) -> Path:
    path = tmp_path / "quick"
    path.mkdir()
    (path / "quick.yaml").write_text(QUICK)
    return path


def _argv(folder: Path, reports: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "regress", str(folder), "-j", "1",
            "--report-dir", str(reports), *extra]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root, **extra}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def test_off_a_tty_the_output_is_the_plain_lines_byte_for_byte(quick: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        _argv(quick, tmp_path / "r"), capture_output=True, env=_env(TERM="xterm"), timeout=120
    )
    assert done.returncode == 0, done.stderr
    run_dir = (tmp_path / "r" / "latest").resolve()
    summary = load_summary(run_dir / "results.json")
    expected = (
        "regress: 2 cells from 1 scenario, 1 job\n"
        "  ok  quick / baseline: pass (expected pass)\n"
        "  ok  quick / keepalive-fixed: pass (expected pass)\n"
        f"\n{render_regress(summary)}\n\nreports: {tmp_path / 'r' / run_dir.name}\n"
    )
    assert done.stdout.decode() == expected
    assert done.stderr == b""


@pytest.mark.slow  # two cells of a second each, so the live display redraws while one runs
def test_on_a_tty_a_live_display_shows_progress_then_the_plain_lines(
    folder: Path, tmp_path: Path
) -> None:
    code, out = run_in_pty(_argv(folder, tmp_path / "r"), _env(TERM="xterm", COLUMNS="120"))
    assert code == 0, out
    assert "\x1b[?25l" in out  # rich hides the cursor while it draws the live region
    text = ANSI.sub("", out)
    assert "0/2 cells" in text and "1/2 cells" in text
    assert "running: slowish / baseline (" in text
    assert "running: slowish / keepalive-fixed (" in text
    # the finished lines and the table still reach the terminal, as plain text
    assert "  ok  slowish / baseline: pass (expected pass)" in out
    assert "  ok  slowish / keepalive-fixed: pass (expected pass)" in out
    assert "2 cells, 2 as expected, 0 not, in " in out
    assert out.rstrip().endswith(
        f"reports: {tmp_path / 'r' / (tmp_path / 'r' / 'latest').resolve().name}"
    )


def test_quiet_prints_only_the_folder_and_json_only_the_results(
    quick: Path, tmp_path: Path
) -> None:
    code, out = run_in_pty(_argv(quick, tmp_path / "q", "--quiet"), _env(TERM="xterm"))
    run_dir = tmp_path / "q" / (tmp_path / "q" / "latest").resolve().name
    assert (code, out) == (0, f"{run_dir}\r\n")  # the terminal turns \n into \r\n
    done = subprocess.run(
        _argv(quick, tmp_path / "j", "--json"), capture_output=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    saved = (tmp_path / "j" / "latest" / "results.json").read_text()
    assert done.stdout.decode() == saved
    assert [e["variant"] for e in json.loads(saved)["entries"]] == ["baseline", "keepalive-fixed"]


def test_choose_mode_and_the_running_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert choose_mode(Tty(), quiet=False, env={"TERM": "xterm"}) == "live"
    assert choose_mode(Tty(), quiet=False, env={"TERM": "dumb"}) == "plain"
    assert choose_mode(Tty(), quiet=True, env={"TERM": "xterm"}) == "quiet"
    assert choose_mode(io.StringIO(), quiet=False, env={"TERM": "xterm"}) == "plain"
    now = [100.0]
    live = Live(io.StringIO(), clock=lambda: now[0])
    live.started("a / x")
    now[0] = 101.0
    live.started("b / y")
    now[0] = 103.6
    assert live._running_line() == "running: a / x (4 s), b / y (3 s)"
    live.plan([("a / x", 1.0), ("b / y", 3.0)])
    live.finished("a / x", "  BAD a / x", failed=True)
    assert live._running_line() == "running: b / y (3 s)"
    task = live.display.tasks[0]
    assert (task.completed, task.total) == (1.0, 4.0)  # weighed by expected duration
    assert task.fields == {"done": 1, "count": 2, "failures": "1 not as expected"}
