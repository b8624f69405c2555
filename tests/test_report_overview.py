"""The overview grid, collapsed all-zero charts and SDK-line labels in every format."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

from _cells import cell

from harness.report import render_html, render_junit, render_markdown
from harness.report.overview import cell_state, deciding_figure, overview
from harness.verdict import RegressEntry, RegressSummary


def _summary(*entries: RegressEntry) -> RegressSummary:
    return RegressSummary(
        run_id="20261125T140000000Z-regress",
        command="regress",
        started="2026-11-25T14:00:00+00:00",
        wall_s=1.0,
        entries=entries,
        environment={"openai": "3.54.0"},
    )


GRID = _summary(
    cell("reap", "baseline", "pass", close_wait=(0, 2)),
    cell("reap", "keepalive-mutating", "fail", errors=9),
    cell("reap", "keepalive-fixed", "pass", errors=2),
    cell("close", "keepalive-mutating", "fail"),
    cell("close", "shared-http-client", "observe"),
)


def test_states_and_deciding_figures() -> None:
    assert [cell_state(e) for e in GRID.entries] == [
        "healthy",
        "caught",
        "unhealthy",
        "missed",
        "observed",
    ]
    healthy = ("errors 0 · retries 0", "CLOSE_WAIT held 0")
    assert [deciding_figure(e) for e in GRID.entries] == [
        ("errors 0 · retries 0", "CLOSE_WAIT held 2"),
        ("errors 9 > 0",),
        ("errors 2 > 0",),
        healthy,
        healthy,
    ]
    grid = overview(GRID)
    assert grid.columns == (
        "baseline",
        "keepalive-mutating",
        "keepalive-fixed",
        "shared-http-client",
    )
    states = [(name, [[b.state for b in blocks] for blocks in cells]) for name, cells in grid.rows]
    assert states == [
        ("reap", [["healthy"], ["caught"], ["unhealthy"], []]),
        ("close", [[], ["missed"], [], ["observed"]]),
    ]


def test_html_grid_comes_first_and_every_cell_links_to_its_row() -> None:
    html = render_html(GRID)
    assert html.index('<section id="overview">') < html.index('<section id="scenario-reap">')
    links = re.findall(
        r'<td class="(\w+)"><a class="\1" href="#([^"]+)" title="([^"]+)"><b>([^<]+)</b>(.*?)</a>',
        html,
    )
    healthy = "<small>errors 0 · retries 0</small><small>CLOSE_<wbr>WAIT held 0</small>"
    # The outcome and what it means: a caught bug never reads as a bare "fail".
    assert links == [
        ("healthy", "cell-reap--baseline", "reap / baseline: pass, expected pass", "pass",
         healthy.replace("d 0", "d 2")),
        ("caught", "cell-reap--keepalive-mutating",
         "reap / keepalive-mutating: fail, expected fail", "fail: bug caught",
         "<small>errors 9 &gt; 0</small>"),
        ("unhealthy", "cell-reap--keepalive-fixed", "reap / keepalive-fixed: fail, expected pass",
         "fail (expected pass)", "<small>errors 2 &gt; 0</small>"),
        ("missed", "cell-close--keepalive-mutating",
         "close / keepalive-mutating: pass, expected fail", "pass (expected fail)", healthy),
        ("observed", "cell-close--shared-http-client",
         "close / shared-http-client: pass, expected observe", "pass (observed only)", healthy),
    ]  # fmt: skip
    for _, anchor, _, _, _ in links:
        assert html.count(f'<tr id="{anchor}"') == 1
    assert html.count('<td class="none" title="not run in this scenario">') == 3


def test_all_zero_charts_collapse_to_one_line_each() -> None:
    html = render_html(GRID)
    # reap: CLOSE_WAIT 2 on one turn and errors -> both charts; close: all zero -> two lines
    assert html.count("<svg") == 2
    assert html.count('<p class="flat">') == 2
    close = html[html.index('<section id="scenario-close">') :]
    assert (
        '<p class="flat">CLOSE_WAIT after each turn: 0 for every variant on every turn.</p>'
        in close
    )
    assert '<p class="flat">Errors, server-seen and SDK retries: 0 for every variant.</p>' in close
    assert "<svg" not in close.split('id="environment"')[0]


def test_sdk_lines_label_every_format() -> None:
    three = cell("reap", "baseline", "pass", close_wait=(0, 1))
    two = dataclasses.replace(
        cell("reap", "baseline", "pass", errors=3, close_wait=(1, 1)), line="2"
    )
    summary = _summary(dataclasses.replace(three, line="3"), two)
    grid = overview(summary)
    assert grid.columns == ("baseline",)
    assert [[b.entry.line for b in blocks] for blocks in grid.rows[0][1]] == [["3", "2"]]
    markdown = render_markdown(summary)
    assert "| baseline [openai 3] | pass | pass | yes |" in markdown
    assert "- **reap / baseline [openai 2]**: expected pass, got fail" in markdown
    root = ET.fromstring(render_junit(summary))
    assert [c.get("name") for c in root.iter("testcase")] == [
        "baseline [openai 3]",
        "baseline [openai 2]",
    ]
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert (props["baseline [openai 3].sdk_line"], props["baseline [openai 2].errors"]) == (
        "3",
        "3",
    )
    html = render_html(summary)
    blocks = re.findall(r'<a class="(\w+)" href="#([^"]+)" title="[^"]+"><b>([^<]+)</b>', html)
    assert blocks == [
        ("healthy", "cell-reap--baseline__openai_3_", "openai 3: pass"),
        ("unhealthy", "cell-reap--baseline__openai_2_", "openai 2: fail (expected pass)"),
    ]
    assert "<td><a class" in html  # two blocks: the cell itself stays uncoloured
    # one colour per variant, one dash pattern per SDK line
    lines = re.findall(
        r'<polyline data-variant="baseline \[openai (\d)\]"[^>]*stroke="([^"]+)"'
        r'[^>]*?(?: stroke-dasharray="([^"]+)")? stroke-linejoin',
        html,
    )
    assert lines == [("3", "#0072B2", ""), ("2", "#0072B2", "9 5")]
