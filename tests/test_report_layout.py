"""Run directories, atomic writes, ``latest``, the step summary and strict loading.

These tests are about files, not measurements, so a small summary built with ``summarize``
from hand-made records is enough (test_report_formats.py covers real runs).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.report import latest_run, load_summary, render_json, write_reports
from harness.report.layout import (
    append_step_summary,
    atomic_write_text,
    run_dir,
    update_latest,
)
from harness.result import CallRecord, ServerStats, SocketSample, summarize
from harness.scenario import Expectations
from harness.verdict import RegressEntry, RegressSummary, judge

OLD, NEW = "20261124T140000Z-regress", "20261124T150000Z-regress"


def _summary(run_id: str) -> RegressSummary:
    records = [
        CallRecord(session=0, turn=t, round=1, ok=True, latency_ms=2.0 * t, started_s=0.1 * t)
        for t in (1, 2)
    ]
    samples = [
        SocketSample("start", 0, 0, 9),
        SocketSample("turn 1", 1, 1, 10, turn=1),
        SocketSample("turn 2", 2, 1, 11, turn=2),
        SocketSample("after gc", 0, 0, 9),
    ]
    result = summarize(
        scenario="s",
        variant="baseline",
        status="completed",
        records=records,
        samples=samples,
        server=ServerStats(connections=2, retry_counts=(0, 0)),
        wall_s=0.25,
        environment={"python": "3.11"},
    )
    verdict = judge(result, Expectations(close_wait_growth=0), "fail")
    return RegressSummary(
        run_id=run_id,
        command="regress",
        started="2026-11-24T14:00:00Z",
        wall_s=0.3,
        entries=(RegressEntry("s", "baseline", "", (result,), (verdict,)),),
        environment={"python": "3.11"},
    )


def _every_file(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_atomic_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\n")
    assert target.read_text() == "two\n"
    assert _every_file(tmp_path) == ["a.txt"]


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "good\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "half written \ud800")  # a lone surrogate cannot be UTF-8
    assert target.read_text() == "good\n"
    assert _every_file(tmp_path) == ["a.txt"]


def test_write_reports_leaves_only_the_four_files_and_latest(tmp_path: Path) -> None:
    write_reports(_summary(OLD), tmp_path, env={})
    write_reports(_summary(NEW), tmp_path, env={})
    assert _every_file(tmp_path) == sorted(
        [
            OLD,
            *(f"{OLD}/{n}" for n in ("junit.xml", "report.html", "results.json", "summary.md")),
            NEW,
            *(f"{NEW}/{n}" for n in ("junit.xml", "report.html", "results.json", "summary.md")),
            "latest",
        ]
    )
    assert os.readlink(tmp_path / "latest") == NEW
    assert latest_run(tmp_path) == NEW


def test_latest_stays_on_the_newest_run_when_an_older_one_is_re_rendered(
    tmp_path: Path,
) -> None:
    write_reports(_summary(NEW), tmp_path, env={})
    write_reports(_summary(OLD), tmp_path, env={})
    assert os.readlink(tmp_path / "latest") == NEW
    assert json.loads((tmp_path / "latest" / "results.json").read_text())["run_id"] == NEW


def test_latest_written_as_a_text_file_is_read_and_then_replaced(tmp_path: Path) -> None:
    (tmp_path / OLD).mkdir()
    (tmp_path / "latest").write_text(OLD + "\n")  # what a filesystem without symlinks gets
    assert latest_run(tmp_path) == OLD
    update_latest(tmp_path, NEW)
    assert os.readlink(tmp_path / "latest") == NEW
    assert latest_run(tmp_path) == NEW
    assert latest_run(tmp_path / "nowhere") is None


@pytest.mark.parametrize("run_id", ["../evil", "a/b", "", "latest", ".hidden"])
def test_a_run_id_that_is_not_a_plain_name_is_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(UsageError, match="cannot name a report directory"):
        run_dir(tmp_path / "reports", run_id)
    assert _every_file(tmp_path) == []


def test_the_step_summary_is_appended_only_when_set(tmp_path: Path) -> None:
    assert append_step_summary("# hi", {}) is None
    step = tmp_path / "step.md"
    assert append_step_summary("# one", {"GITHUB_STEP_SUMMARY": str(step)}) == step
    append_step_summary("# two\n", {"GITHUB_STEP_SUMMARY": str(step)})
    assert step.read_text() == "# one\n# two\n"
    with pytest.raises(UsageError, match="cannot append to GITHUB_STEP_SUMMARY"):
        append_step_summary("x", {"GITHUB_STEP_SUMMARY": str(tmp_path)})


def test_load_summary_round_trips(tmp_path: Path) -> None:
    summary = _summary(OLD)
    path = tmp_path / "results.json"
    path.write_text(render_json(summary))
    assert load_summary(path) == summary
    interrupted = dataclasses.replace(summary, interrupted=True)
    path.write_text(render_json(interrupted))
    assert load_summary(path) == interrupted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{\n\n  nope", r"results\.json:3: not valid JSON \(Expecting property name"),
        ("[1, 2]", r"results\.json: expected a JSON object at the top, got list"),
        ('{"schema": 2}', r"results\.json: unknown results schema 2; this harness reads schema 1"),
        ('{"run_id": "x"}', r"results\.json: unknown results schema None"),
        (
            '{"schema": 1, "run_id": "x"}',
            r"results\.json: schema 1 results lack the field 'command'",
        ),
        (
            '{"schema": 1, "run_id": "x", "command": "regress", "started": "", "wall_s": 1,'
            ' "environment": {}, "entries": [{"scenario": "s"}]}',
            r"results\.json: schema 1 results lack the field 'variant'",
        ),
        (
            '{"schema": 1, "run_id": "x", "command": "regress", "started": "", "wall_s": 1,'
            ' "environment": [1], "entries": []}',
            r"results\.json: malformed schema 1 results",
        ),
    ],
)
def test_load_summary_names_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_summary(path)


def test_load_summary_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"gone\.json: no such file; pass a results\.json"):
        load_summary(tmp_path / "gone.json")


def test_a_run_interrupted_before_any_cell_finished_still_writes_every_file(
    tmp_path: Path,
) -> None:
    empty = dataclasses.replace(_summary(OLD), entries=(), interrupted=True)
    run = write_reports(empty, tmp_path, env={})
    assert load_summary(run / "results.json") == empty
    assert "No cell finished before the run ended." in (run / "report.html").read_text()
    junit = (run / "junit.xml").read_text()
    assert '<testsuites name="harness regress ' in junit
    assert 'tests="1" failures="0" errors="1"' in junit
    assert (run / "summary.md").read_text().splitlines()[2] == (
        f"**INTERRUPTED: 0 cells, 0 as expected, wall 0.3 s (regress {OLD}) (partial: the run "
        "was interrupted; only finished cells are shown)**"
    )


def test_the_public_api_is_what_all_names() -> None:
    import harness.report

    assert sorted(harness.report.__all__) == [
        "FILES",
        "SCHEMA",
        "latest_run",
        "load_summary",
        "parse_summary",
        "render_html",
        "render_json",
        "render_junit",
        "render_markdown",
        "write_reports",
    ]
    for name in harness.report.__all__:
        assert getattr(harness.report, name) is not None
