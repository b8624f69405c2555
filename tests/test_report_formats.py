"""Report writers and compare on a golden results.json from a real run.

tests/data/results.json holds two tiny scenarios (tests/data/scenarios/) run across three
bundled variants by real workers, real sockets and the real SDK, and judged; every test reads
that one summary instead of running workers. ``python3 -m nox -s golden`` regenerates it
(tests/data/make_golden.py) when RunResult or the summary gains a field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import junitparser
import pytest

from harness import cli
from harness.commands.compare import COMMAND as compare_command
from harness.commands.report import COMMAND as report_command
from harness.errors import UsageError
from harness.report import (
    load_summary,
    parse_summary,
    render_html,
    render_json,
    render_junit,
    render_markdown,
    write_reports,
)
from harness.report.markdown import COLUMNS
from harness.verdict import RegressEntry, RegressSummary, Verdict

GOLDEN = Path(__file__).parent / "data" / "results.json"


@pytest.fixture(scope="module")
def summary() -> RegressSummary:
    return load_summary(GOLDEN)


@pytest.fixture(scope="module")
def closed(summary: RegressSummary) -> str:
    """What use-after-close raised in the golden run: openai 3.x lets the bare RuntimeError
    out, 1.x/2.x wrap it."""
    major = int(summary.environment["openai"].split(".")[0])
    return "RuntimeError" if major >= 3 else "openai.APIConnectionError"


def _cell(summary: RegressSummary, scenario: str, variant: str) -> RegressEntry:
    return next(e for e in summary.entries if (e.scenario, e.variant) == (scenario, variant))


def test_the_golden_run_shows_what_the_scenarios_are_built_to_show(
    summary: RegressSummary, closed: str
) -> None:
    # Every other test leans on this mix: healthy, caught, not caught, observed.
    caught = _cell(summary, "use-after-close", "keepalive-mutating")
    assert (caught.result.status, caught.result.calls, caught.result.errors) == ("completed", 4, 3)
    assert dict(caught.result.errors_by_type) == {closed: 3}
    assert caught.verdict.outcome == "fail" and caught.as_expected
    for variant in ("baseline", "keepalive-fixed"):
        healthy = _cell(summary, "use-after-close", variant)
        assert (healthy.result.errors, healthy.verdict.outcome, healthy.as_expected) == (
            0,
            "pass",
            True,
        )
    leak = _cell(summary, "abandoned-clients", "baseline")
    assert leak.result.close_wait_series == (1, 2, 3, 4)
    assert leak.verdict.reasons == ("close_wait_growth 4 > 1",) and leak.as_expected
    missed = _cell(summary, "abandoned-clients", "keepalive-mutating")
    assert missed.result.close_wait_series == (1, 1, 1, 1)
    assert (missed.verdict.outcome, missed.as_expected) == ("pass", False)
    assert [e.as_expected for e in summary.entries] == [True, True, True, True, False, True]


# --- results.json --------------------------------------------------------------------------


def test_json_round_trips_to_an_equal_summary(summary: RegressSummary, tmp_path: Path) -> None:
    text = render_json(summary)
    assert json.loads(text)["schema"] == 1
    assert parse_summary(text) == summary
    run = write_reports(summary, tmp_path, env={})
    assert load_summary(run / "results.json") == summary
    assert (run / "results.json").read_text(encoding="utf-8") == text


# --- junit.xml -----------------------------------------------------------------------------

# The Jenkins xunit junit-10.xsd, as element -> (allowed children, allowed attrs, required).
_XSD = {
    "testsuites": ({"testsuite"}, {"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": (
        {"testsuite", "properties", "testcase", "system-out", "system-err"},
        {
            "name",
            "tests",
            "failures",
            "errors",
            "group",
            "time",
            "skipped",
            "timestamp",
            "hostname",
            "id",
            "package",
            "file",
            "log",
            "url",
        },
        {"name", "tests", "failures", "errors"},
    ),
    "properties": ({"property"}, set(), set()),
    "property": (set(), {"name", "value"}, {"name", "value"}),
    "testcase": (
        {
            "skipped",
            "error",
            "failure",
            "rerunFailure",
            "rerunError",
            "flakyFailure",
            "flakyError",
            "system-out",
            "system-err",
        },
        {"name", "time", "classname", "group"},
        {"name"},
    ),
    "failure": (set(), {"type", "message"}, set()),
    "error": (set(), {"type", "message"}, set()),
    "skipped": (set(), {"type", "message"}, set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
_SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def _validate_junit(element: ET.Element) -> int:
    """Check ``element`` against :data:`_XSD`; return how many elements were checked."""
    children, attrs, required = _XSD[element.tag]
    assert set(element.attrib) <= attrs, (element.tag, element.attrib)
    assert required <= set(element.attrib), (element.tag, element.attrib)
    if element.tag in ("testsuite", "testsuites") and "time" in element.attrib:
        assert _SUREFIRE_TIME.fullmatch(element.attrib["time"])
    checked = 1
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        checked += _validate_junit(child)
    return checked


def test_junit_is_valid_and_junitparser_reads_the_expected_counts(
    summary: RegressSummary, closed: str, tmp_path: Path
) -> None:
    run = write_reports(summary, tmp_path, env={})
    root = ET.parse(run / "junit.xml").getroot()
    assert _validate_junit(root) > 50
    xml = junitparser.JUnitXml.fromfile(str(run / "junit.xml"))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["use-after-close", "abandoned-clients"]
    assert [(s.tests, s.failures, s.errors) for s in suites.values()] == [(3, 0, 0), (3, 1, 0)]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "1", "0")
    failed = []
    for suite in suites.values():
        for case in suite:
            entry = _cell(summary, case.classname, case.name)
            if case.result:
                failed.append((case.classname, case.name))
                assert case.result[0].type == "not-caught"
                assert case.result[0].message.startswith("expected fail, got pass: healthy")
            assert case.system_out.splitlines()[0] == "CLOSE_WAIT per turn: " + " ".join(
                map(str, entry.result.close_wait_series)
            )
    assert failed == [("abandoned-clients", "keepalive-mutating")]
    props = {p.name: p.value for p in suites["use-after-close"].properties()}
    assert props["keepalive-mutating.errors"] == "3"
    assert props["keepalive-mutating.errors_by_type"] == f"{closed}=3"
    assert props["keepalive-mutating.as_expected"] == "true"
    assert props["env.openai"] == summary.environment["openai"]


# --- summary.md ----------------------------------------------------------------------------


def test_markdown_has_a_headline_and_one_row_per_variant(
    summary: RegressSummary, closed: str
) -> None:
    text = render_markdown(summary)
    lines = text.splitlines()
    assert lines[2].startswith("**FAILED: 6 cells, 5 as expected, wall ")
    header = "| " + " | ".join(COLUMNS) + " |"
    assert lines.count(header) == 2
    for scenario, entries in summary.by_scenario().items():
        start = lines.index(f"### {scenario}")
        table = lines[lines.index(header, start) + 2 :]
        rows = table[: next(i for i, line in enumerate(table) if not line.startswith("|"))]
        assert [row.split(" | ")[0] for row in rows] == [f"| {e.variant} (sync)" for e in entries]
    assert f"| keepalive-mutating (sync) | fail | fail | yes | 3 ({closed} 3) | 0 |" in text
    assert "Closing a per-request client closes the shared &lt;transport&gt; too." in text
    reasons = text.split("### Not as expected\n", 1)[1]
    assert reasons.startswith(
        "\n- **abandoned-clients / keepalive-mutating**: expected fail, "
        "got pass\n  - healthy, but expected fail"
    )


# --- report.html ---------------------------------------------------------------------------


class _Collect(HTMLParser):
    """Every tag with its attributes, the text, and per <svg> its elements in order."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[list[tuple[str, dict[str, str]]]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._svg_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "svg":
            self.svgs.append([])
            self._svg_depth += 1
        elif self._svg_depth:
            self.svgs[-1].append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._svg_depth and self.svgs[-1][-1][0] == "text":
            self.svgs[-1][-1][1]["_text"] = data


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    parser.close()
    return parser


def _axes(svg: list[tuple[str, dict[str, str]]]) -> tuple[dict[int, float], dict[int, float]]:
    """What a reader sees: the x of each turn label and the y of each labelled gridline."""
    texts = [a for tag, a in svg if tag == "text" and a.get("_text", "").isdigit()]
    x_of = {int(a["_text"]): float(a["x"]) for a in texts if a["text-anchor"] == "middle"}
    y_labels = sorted(int(a["_text"]) for a in texts if a["text-anchor"] == "end")
    grid = sorted(
        (float(a["y1"]) for tag, a in svg if tag == "line" and a.get("stroke") == "#ddd"),
        reverse=True,
    )
    assert len(grid) == len(y_labels) >= 2
    return x_of, dict(zip(y_labels, grid, strict=True))


def test_html_draws_one_polyline_per_variant_on_the_measured_series(
    summary: RegressSummary,
) -> None:
    html = render_html(summary)
    parsed = _parse(html)
    # A chart whose every value is 0 is one line of text instead; which ones are depends on
    # what the real run measured, so count them from the summary.
    groups = list(summary.by_scenario().values())
    lines = [any(v for e in g for v in e.result.close_wait_series) for g in groups]
    bars = [
        any(e.result.errors or e.result.retries or e.result.sdk_retries for e in g) for g in groups
    ]
    assert lines[1] and bars[0]  # abandoned clients leak; use-after-close fails calls
    assert len(parsed.svgs) == sum(lines) + sum(bars)
    flat = "CLOSE_WAIT after each turn: 0 for every variant on every turn."
    assert html.count(flat) == lines.count(False)
    assert html.count("Errors, server-seen and SDK retries: 0 for every variant.") == bars.count(
        False
    )
    checked = 0
    charts = [svg for svg in parsed.svgs if any(tag == "polyline" for tag, _ in svg)]
    drawn = [g for g, drew in zip(groups, lines, strict=True) if drew]
    for svg, entries in zip(charts, drawn, strict=True):
        polylines = [a for tag, a in svg if tag == "polyline"]
        assert [p["data-variant"] for p in polylines] == [e.variant for e in entries]
        x_of, y_of = _axes(svg)
        assert sorted(x_of) == [1, 2, 3, 4]
        for polyline, entry in zip(polylines, entries, strict=True):
            points = [tuple(map(float, p.split(","))) for p in polyline["points"].split()]
            series = entry.result.close_wait_series
            assert len(points) == len(series) == 4
            for turn, (value, (x, y)) in enumerate(zip(series, points, strict=True), start=1):
                assert (x, y) == pytest.approx((x_of[turn], y_of[value]), abs=0.06)
                checked += 1
    assert checked == 12 * len(drawn)


def test_html_is_self_contained(summary: RegressSummary) -> None:
    parsed = _parse(render_html(summary))
    names = {tag for tag, _ in parsed.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}
    for _, attrs in parsed.tags:
        for name, value in attrs.items():
            assert "//" not in (value or "") and "url(" not in (value or ""), (name, value)
            assert name != "src"
    assert "@import" not in render_html(summary) and "url(" not in render_html(summary)


def test_html_escapes_everything_from_the_results(summary: RegressSummary) -> None:
    hostile = "<script>alert('x')</script> see https://example.invalid/a?b=1&c=2"
    entries = tuple(dataclasses.replace(e, description=hostile) for e in summary.entries)
    html = render_html(dataclasses.replace(summary, entries=entries))
    assert "<script>" not in html and "https://" not in html.replace(
        "see https://example.invalid/a?b=1&amp;c=2", ""
    )
    parsed = _parse(html)
    assert hostile in "".join(parsed.text)
    assert not any(tag == "script" for tag, _ in parsed.tags)


# --- interrupted runs, write_reports, the report command ------------------------------------


def test_an_interrupted_summary_still_writes_valid_files(
    summary: RegressSummary, tmp_path: Path
) -> None:
    partial = dataclasses.replace(summary, entries=summary.entries[:2], interrupted=True)
    run = write_reports(partial, tmp_path, env={})
    assert load_summary(run / "results.json") == partial
    assert json.loads((run / "results.json").read_text())["ok"] is False
    xml = junitparser.JUnitXml.fromfile(str(run / "junit.xml"))
    assert [(s.name, s.tests, s.failures, s.errors) for s in xml] == [
        ("use-after-close", 2, 0, 0),
        ("harness", 1, 0, 1),
    ]
    assert _validate_junit(ET.parse(run / "junit.xml").getroot()) > 10
    headline = (run / "summary.md").read_text().splitlines()[2]
    assert headline.startswith("**INTERRUPTED: 2 cells, 2 as expected")
    drawn = [
        any(v for e in partial.entries for v in e.result.close_wait_series),
        any(e.result.errors or e.result.retries for e in partial.entries),
    ]
    assert drawn[1]  # the mutating factory's calls fail
    assert len(_parse((run / "report.html").read_text()).svgs) == sum(drawn)


def test_write_reports_writes_every_format_and_appends_the_step_summary(
    summary: RegressSummary, tmp_path: Path
) -> None:
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    run = write_reports(summary, tmp_path / "reports", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert run == tmp_path / "reports" / summary.run_id
    assert sorted(p.name for p in run.iterdir()) == [
        "junit.xml",
        "report.html",
        "results.json",
        "summary.md",
    ]
    assert sorted(p.name for p in run.parent.iterdir()) == [summary.run_id, "latest"]
    assert (run.parent / "latest").resolve() == run.resolve()
    assert step.read_text() == "earlier step\n" + (run / "summary.md").read_text()


def test_the_report_command_re_renders_the_same_files(
    summary: RegressSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_reports(summary, tmp_path / "a", env={})
    ns = argparse.Namespace(results=[first / "results.json"], out=tmp_path / "b", merge=False)
    assert report_command.main(ns) == 0
    second = tmp_path / "b" / summary.run_id
    assert capsys.readouterr().out == f"{second}\n"
    for name in ("results.json", "junit.xml", "summary.md", "report.html"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    with pytest.raises(UsageError, match="no such file"):
        report_command.main(
            argparse.Namespace(results=[tmp_path / "nope.json"], out=tmp_path, merge=False)
        )


# --- compare -------------------------------------------------------------------------------


def _save(summary: RegressSummary, path: Path) -> Path:
    path.write_text(render_json(summary), encoding="utf-8")
    return path


def _compare(base: Path, new: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = compare_command.main(argparse.Namespace(base=base, new=new))
    return code, capsys.readouterr().out


def test_compare_an_equal_run_exits_0(
    summary: RegressSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _save(summary, tmp_path / "base.json")
    code, out = _compare(base, base, capsys)
    assert code == 0
    assert out.splitlines()[1:] == [
        "unchanged: 6 of 6 cells",
        "NEW is not worse than BASE on any verdict",
    ]


def test_compare_a_worsened_run_exits_1(
    summary: RegressSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NEW: the fixed variant now fails use-after-close the way the mutating one does.
    caught = _cell(summary, "use-after-close", "keepalive-mutating")
    worse = dataclasses.replace(
        caught,
        variant="keepalive-fixed",
        runs=(dataclasses.replace(caught.result, variant="keepalive-fixed"),),
        verdicts=(Verdict(healthy=False, reasons=caught.verdict.reasons, expected="pass"),),
    )
    entries = tuple(
        worse if (e.scenario, e.variant) == ("use-after-close", "keepalive-fixed") else e
        for e in summary.entries
    )
    new = dataclasses.replace(summary, run_id="20261124T160000Z-regress", entries=entries)
    code, out = _compare(
        _save(summary, tmp_path / "base.json"), _save(new, tmp_path / "new.json"), capsys
    )
    assert code == 1
    assert out.splitlines() == [
        "compare 20261124T150000Z-regress (BASE) -> 20261124T160000Z-regress (NEW)",
        "WORSE     use-after-close / keepalive-fixed: errors 0 -> 3; verdict pass (as expected, "
        "expected pass) -> fail (NOT as expected, expected pass)",
        "unchanged: 5 of 6 cells",
        "NEW is worse than BASE on 1 cell",
    ]
    # The other way round the same cell got better: exit 0.
    code, out = _compare(tmp_path / "new.json", tmp_path / "base.json", capsys)
    assert code == 0 and out.splitlines()[1].startswith("BETTER    use-after-close / keepalive")


def test_compare_a_run_missing_a_cell_exits_1(
    summary: RegressSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = dataclasses.replace(summary, entries=summary.entries[:-1], interrupted=True)
    code, out = _compare(
        _save(summary, tmp_path / "base.json"), _save(new, tmp_path / "new.json"), capsys
    )
    assert code == 1
    assert (
        "MISSING   abandoned-clients / keepalive-fixed: in BASE (fail (as expected, "
        "expected observe)), not in NEW" in out.splitlines()
    )


def test_compare_refuses_a_bad_file(summary: RegressSummary, tmp_path: Path) -> None:
    base = _save(summary, tmp_path / "base.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 1,\n "run_id": oops}\n')
    with pytest.raises(UsageError, match=r"bad\.json:2: not valid JSON"):
        compare_command.main(argparse.Namespace(base=base, new=bad))


def test_the_command_line_exit_codes(
    summary: RegressSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _save(summary, tmp_path / "base.json")
    new = _save(dataclasses.replace(summary, entries=summary.entries[1:]), tmp_path / "new.json")
    (tmp_path / "bad.json").write_text('{"schema": 7}')
    assert cli.main(["compare", str(base), str(base)]) == 0
    assert cli.main(["compare", str(base), str(new)]) == 1
    capsys.readouterr()
    assert cli.main(["compare", str(base), str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err == (
        f"harness compare: error: {tmp_path / 'bad.json'}: unknown results schema 7; "
        "this harness reads schema 1\n"
    )
    assert cli.main(["report", str(base), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "latest" / "report.html").is_file()


def test_compare_and_every_format_show_the_new_metrics(
    summary: RegressSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cell = _cell(summary, "abandoned-clients", "keepalive-mutating")
    moved = dataclasses.replace(
        cell,
        runs=(dataclasses.replace(cell.result, close_wait_live_after_gc=3, sdk_retries=4),),
    )
    entries = tuple(moved if e is cell else e for e in summary.entries)
    new = dataclasses.replace(summary, run_id="20261124T160000Z-regress", entries=entries)
    code, out = _compare(
        _save(summary, tmp_path / "base.json"), _save(new, tmp_path / "new.json"), capsys
    )
    assert code == 0
    assert out.splitlines()[1] == (
        "CHANGED   abandoned-clients / keepalive-mutating: SDK retries 0 -> 4; "
        "CLOSE_WAIT live after GC 1 -> 3"
    )
    assert "| keepalive-mutating (sync) | fail | pass | NO | 0 | 0 | 4 | 1 | +1 | 3 | 0 | 0 |" in (
        render_markdown(new)
    )
    junit = render_junit(new)
    assert '<property name="keepalive-mutating.sdk_retries" value="4" />' in junit
    assert '<property name="keepalive-mutating.close_wait_live_after_gc" value="3" />' in junit
    assert "CLOSE_WAIT live after gc: 3, after close: 0, after gc: 0" in junit
    html = render_html(new)
    assert '<th class="">live after GC</th>' in html and '<th class="">SDK retries</th>' in html


def test_results_written_before_the_new_fields_still_load(summary: RegressSummary) -> None:
    data = summary.to_dict()
    for entry in data["entries"]:
        for run in entry["runs"]:
            for name in ("sdk_retries", "close_wait_live_after_gc", "fds_live_after_gc"):
                del run[name]
            for record in run["records"]:
                del record["sdk_retries"]
    old = RegressSummary.from_dict(data)
    assert {(r.sdk_retries, r.close_wait_live_after_gc) for e in old.entries for r in e.runs} == {
        (0, 0)
    }
