"""Run directories, atomic writes, ``latest``, the step summary and strict loading.

These tests are about files, not measurements, so a small summary built with ``summarize``
from hand-made records is enough (test_report_formats.py covers real runs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main as cli_main
from harness.errors import UsageError
from harness.report import (
    FILES,
    SCHEMA,
    latest_run,
    load_summary,
    parse_summary,
    render_json,
    write_reports,
)
from harness.report.layout import (
    append_step_summary,
    atomic_write_text,
    current_umask,
    run_dir,
    update_latest,
)
from harness.report.results_schema import SchemaMismatch, check
from harness.result import CallRecord, RunResult, ServerStats, SocketSample, summarize
from harness.scenario import Expectations
from harness.verdict import RegressEntry, RegressSummary, Verdict, judge

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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_report_files_honour_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        write_reports(_summary(OLD), tmp_path, env={})
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / OLD).iterdir()}
    names = ("junit.xml", "report.html", "results.json", "summary.md")
    assert modes == dict.fromkeys(names, mode)


def test_written_text_is_scrubbed_of_secret_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "sk-layout-0123456789")
    monkeypatch.setenv("PLAIN_SETTING", "plain-value-0123456789")  # not secret by its name
    target, step = tmp_path / "a.txt", tmp_path / "step.md"
    text = "key sk-layout-0123456789, setting plain-value-0123456789\n"
    atomic_write_text(target, text)
    append_step_summary(text, {"GITHUB_STEP_SUMMARY": str(step)})
    expected = "key <redacted>, setting plain-value-0123456789\n"
    assert (target.read_text(), step.read_text()) == (expected, expected)


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


@pytest.mark.parametrize("run_id", ["../evil", "a/b", "", "latest", ".hidden", "/abs", ".."])
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
            r"results\.json: field 'command': missing \(a required field\); see docs/reports\.md",
        ),
        (
            '{"schema": 1, "run_id": "x", "command": "regress", "started": "", "wall_s": 1,'
            ' "environment": {}, "entries": [{"scenario": "s"}]}',
            r"results\.json: field 'entries\[0\]\.variant': missing \(a required field\)",
        ),
        (
            '{"schema": 1, "run_id": "x", "command": "regress", "started": "", "wall_s": 1,'
            ' "environment": [1], "entries": []}',
            r"results\.json: field 'environment': expected an object, got a list \[1\]",
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


def test_each_file_holds_its_renderers_text_and_results_json_reads_back(tmp_path: Path) -> None:
    summary = _summary(OLD)
    run = write_reports(summary, tmp_path, env={})
    for name, render in FILES:
        assert (run / name).read_text(encoding="utf-8") == render(summary), name
    text = (run / "results.json").read_text(encoding="utf-8")
    assert json.loads(text)["schema"] == SCHEMA
    assert parse_summary(text) == summary


def test_a_run_dir_that_is_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "reports", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / OLD).symlink_to(elsewhere)
    with pytest.raises(UsageError, match=r"is a symbolic link; remove it or pick another --out"):
        write_reports(_summary(OLD), root, env={})
    assert _every_file(elsewhere) == []


def _edited(edit: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads(render_json(_summary(OLD)))
    edit(data)
    return json.dumps(data)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """An edit that sets ``data[a][b]...`` for a path like ``entries.0.runs.0.errors``."""

    def edit(data: dict[str, Any]) -> None:
        *parents, last = (int(k) if k.isdigit() else k for k in path.split("."))
        target: Any = data
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (_set("run_id", 42), "run_id", "expected a string, got int 42"),
        (
            _set("run_id", "../../outside"),
            "run_id",
            "run id '../../outside' cannot name a report directory",
        ),
        (_set("run_id", "/tmp/abs"), "run_id", "run id '/tmp/abs' cannot name"),
        (_set("wall_s", "0.3"), "wall_s", "expected a number, got the string '0.3'"),
        (
            _set("entries.0.runs.0.errors", "3"),
            "entries[0].runs[0].errors",
            "expected an integer, got the string '3'",
        ),
        (
            _set("entries.0.runs.0.calls", True),
            "entries[0].runs[0].calls",
            "expected an integer, got the boolean True",
        ),
        (
            _set("entries.0.runs.0.status", "fine"),
            "entries[0].runs[0].status",
            "expected one of 'completed', 'hung', 'crashed', 'untestable', got the string 'fine'",
        ),
        (
            _set("entries.0.runs.0.records.1.latency_ms", None),
            "entries[0].runs[0].records[1].latency_ms",
            "expected a number, got null",
        ),
        (
            _set("entries.0.runs.0.errors_by_type", {"E": "1"}),
            "entries[0].runs[0].errors_by_type.E",
            "expected an integer, got the string '1'",
        ),
        (
            _set("entries.0.runs.0.samples.0.extra", 1),
            "entries[0].runs[0].samples[0].extra",
            "unknown field in SocketSample",
        ),
        (
            _set("entries.0.runs.0.server.calls", {}),
            "entries[0].runs[0].server.calls",
            "expected a list, got an object",
        ),
        (
            _set("entries.0.verdicts.0.healthy", 1),
            "entries[0].verdicts[0].healthy",
            "expected true or false, got int 1",
        ),
        (_set("entries.0", []), "entries[0]", "expected an object, got a list []"),
    ],
)
def test_a_hand_edited_results_file_names_the_field(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(_edited(edit))
    with pytest.raises(UsageError) as caught:
        load_summary(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: field {field!r}: {message}")
    assert "\n" not in text


def test_every_result_field_is_validated(tmp_path: Path) -> None:
    """The check is derived from the dataclasses: each field of each result class refuses a
    wrong value, with no list of fields kept anywhere by hand."""
    data = json.loads(render_json(_summary(OLD)))
    where = {
        RegressSummary: (data, ""),
        RegressEntry: (data["entries"][0], "entries[0]."),
        RunResult: (data["entries"][0]["runs"][0], "entries[0].runs[0]."),
        Verdict: (data["entries"][0]["verdicts"][0], "entries[0].verdicts[0]."),
        CallRecord: (data["entries"][0]["runs"][0]["records"][0], "entries[0].runs[0].records[0]."),
        SocketSample: (
            data["entries"][0]["runs"][0]["samples"][0],
            "entries[0].runs[0].samples[0].",
        ),
        ServerStats: (data["entries"][0]["runs"][0]["server"], "entries[0].runs[0].server."),
    }
    checked = 0
    for cls, (part, prefix) in where.items():
        for f in dataclasses.fields(cls):
            if f.name == "scenarios":  # scenario settings are free-form objects
                continue
            saved = part.get(f.name, _ABSENT)
            part[f.name] = [{}]  # wrong for every field type the results use
            with pytest.raises(SchemaMismatch) as caught:
                check(RegressSummary, data, allowed=frozenset({"schema"}))
            assert caught.value.field.startswith(prefix + f.name), (cls, f.name)
            checked += 1
            if saved is _ABSENT:
                del part[f.name]
            else:
                part[f.name] = saved
    assert checked == sum(len(dataclasses.fields(c)) for c in where) - 1
    check(RegressSummary, data, allowed=frozenset({"schema"}))  # restored: valid again


_ABSENT = object()


def test_report_and_compare_refuse_a_bad_file_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(render_json(_summary(OLD)))
    bad.write_text(_edited(_set("entries.0.runs.0.retries", "0")))
    expected = (
        f"{bad}: field 'entries[0].runs[0].retries': expected an integer, got the string '0'; "
        "see docs/reports.md (schema 1)\n"
    )
    assert cli_main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"harness report: error: {expected}"
    assert cli_main(["compare", str(good), str(bad)]) == 2
    assert capsys.readouterr().err == f"harness compare: error: {expected}"
    assert not (tmp_path / "out").exists()
