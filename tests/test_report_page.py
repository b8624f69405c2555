"""report.html's page: shared facts at the top, only real differences below, chart labels
broken between words, bar kinds told apart (no browser; see docs/reports.md for the 1280 px
check in Chromium)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from harness.report import load_summary, render_html
from harness.report.svg import _wrap, bar_chart, pens
from harness.variants import BUNDLED
from harness.verdict import RegressSummary

GOLDEN = Path(__file__).parent / "data" / "results.json"


def _with_env(summary: RegressSummary, changes: dict[int, dict[str, str]]) -> RegressSummary:
    entries = []
    for i, entry in enumerate(summary.entries):
        runs = tuple(
            dataclasses.replace(r, environment={**r.environment, **changes.get(i, {})})
            for r in entry.runs
        )
        entries.append(dataclasses.replace(entry, runs=runs))
    return dataclasses.replace(summary, entries=tuple(entries))


def test_facts_every_run_shares_are_at_the_top_and_only_real_differences_below() -> None:
    summary = load_summary(GOLDEN)  # every run records target_commit; the summary does not
    html = render_html(summary)
    assert '<p class="facts">Every run: <b>h11</b> 0.16.0 · ' in html
    assert "<b>target_commit</b> 368868482d219239c5ff2dc13e35c1b01ce5d2ee" in html
    assert "Runs that differ" not in html
    html = render_html(_with_env(summary, {1: {"openai": "2.31.0"}}))
    differ = re.search(r"<p>Runs that differ:</p><ul>(.*?)</ul>", html)
    assert differ is not None
    items = re.findall(r"<li>(.*?)</li>", differ.group(1))
    assert items[:2] == [
        "use-after-close / baseline: openai=3.57.0",
        "use-after-close / keepalive-mutating: openai=2.31.0",
    ]
    assert len(items) == 6  # every run, with only the key that differs
    assert "<b>openai</b>" not in html.split('<p class="facts">')[1].split("</p>")[0]


def test_chart_labels_break_between_words_only() -> None:
    assert _wrap("keepalive-mutating-async", 12) == ["keepalive-", "mutating-", "async"]
    assert _wrap("baseline", 12) == ["baseline"]
    assert _wrap("a-b-c-d-e-f-g-h", 4) == ["a-b-", "c-d-", "e-f…"]
    assert _wrap("averyveryverylongname", 8) == ["averyve…"]


def test_each_bar_kind_has_its_own_look_in_bars_and_key() -> None:
    names = list(BUNDLED)[:8]  # 8 variants: a 12-character line under each group
    svg = bar_chart(
        {n: (("errors", 1), ("retries", 2), ("SDK retries", 3)) for n in names},
        pens(names),
        title="t",
        y_label="n",
    )
    tags = re.findall(r"<rect data-variant=[^>]*>", svg)
    bars = [
        (
            re.findall(r'data-kind="([^"]+)"', tag)[0],
            re.findall(r'fill-opacity="([^"]+)"', tag)[0],
            " stroke-dasharray" if "stroke-dasharray" in tag else "",
        )
        for tag in tags
    ]
    assert sorted(set(bars)) == [
        ("SDK retries", "0", " stroke-dasharray"),
        ("errors", "1", ""),
        ("retries", "0.35", ""),
    ]
    key = re.findall(r'<rect x="[^"]+" y="[^"]+" width="28"[^>]*fill-opacity="([^"]+)"', svg)
    assert key == ["1", "0.35", "0"]
    labels = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    groups = [t for t in labels if not t.isdigit()][2:-3]  # the title and y label, the key
    assert groups == [
        "baseline", "keepalive-", "mutating", "keepalive-", "fixed", "shared-http-", "client",
        "baseline-", "async", "keepalive-", "mutating-", "async", "keepalive-", "fixed-async",
        "shared-http-", "client-async",
    ]  # fmt: skip
