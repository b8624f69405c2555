"""report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched).

First an overview grid (scenario x variant, x SDK line in a compat report; see
:mod:`harness.report.overview`), each cell coloured by outcome and expectation and linking to
its table row. Then per scenario: a CLOSE_WAIT-per-turn line chart and an errors/retries bar
chart (each one line of text instead when every value is 0), the same table as summary.md,
the reasons for cells not as expected, and the scenario's settings; at the end the
environment fingerprint. Every piece of text from a result is HTML-escaped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from html import escape

from harness.report.markdown import (
    COLUMNS,
    HELD_COLUMNS,
    TEXT_COLUMNS,
    headline,
    held_rows,
    reason_lines,
    table_rows,
)
from harness.report.overview import (
    CELL_WORDS,
    STATES,
    GridCell,
    overview,
    row_anchor,
    section_anchor,
)
from harness.report.svg import DASHES, Pen, bar_chart, line_chart, pens
from harness.result import event_marks
from harness.verdict import RegressEntry, RegressSummary

__all__ = ["CSS", "render_html"]

# The page styles; watch.html (harness.report.watch) shares them.
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
 max-width:1220px;padding:0 16px;color:#1b1b1b;background:#fff;line-height:1.4}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.25em;margin:0 0 .2em}
.headline{font-size:1.05em;padding:8px 12px;border-radius:6px;display:inline-block}
.ok{background:#e3f4e8;border:1px solid #2e8b57}.failed{background:#fde8e6;border:1px solid #c0392b}
.interrupted{background:#fff4d6;border:1px solid #b8860b}
section{border-top:2px solid #ddd;padding-top:14px;margin-top:22px}
.desc{color:#444;margin:.2em 0 .8em}.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{border:1px solid #e2e2e2;border-radius:6px;background:#fcfcfc}
table{border-collapse:collapse;margin:12px 0;font-size:.82em}td{white-space:nowrap}
.fit{max-width:100%;overflow-x:auto}th{white-space:normal}
td.l{white-space:normal;overflow-wrap:anywhere;min-width:7em}
.facts{color:#333;font-size:.92em}.facts b{font-weight:600}
th,td{border:1px solid #d0d0d0;padding:4px 6px;text-align:right;vertical-align:top}
th{background:#f1f3f5}td.l,th.l{text-align:left}tr.bad td{background:#fdecea}
td.err{white-space:normal;min-width:8em}td.no{color:#b00020;font-weight:bold}td.yes{color:#1e7b3c}
.swatch{display:inline-block;width:22px;height:4px;margin:0 6px 3px 0;vertical-align:middle}
.reasons li{margin:.2em 0}code{font-size:.95em}details{margin:.4em 0}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:.85em}
table.grid{font-size:.8em;width:100%;table-layout:fixed}table.grid small{overflow-wrap:anywhere}
table.grid col.scenario{width:8.5em}table.grid td{padding:0;white-space:normal;text-align:left}
table.grid th{white-space:normal;text-align:left;padding:4px}table.grid td a{display:block;
 padding:4px 5px;color:inherit;text-decoration:none}table.grid td a:hover{outline:2px solid #333}
.grid a+a{border-top:2px solid #fff}.grid b{display:block}
.grid small{display:block;color:#333;font-size:.85em}
td.none{background:#fafafa;color:#999}
.healthy{background:#d9f2e1}.caught{background:#dce9f7}.unhealthy{background:#f9c9c3}
.missed{background:#f8d8a8}.observed{background:#eceff1}
.legend{margin:.4em 0}.legend span{display:inline-block;padding:2px 8px;margin:0 6px 4px 0;
 border-radius:4px}
p.flat{color:#555;margin:.3em 0;font-size:.92em}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _header(summary: RegressSummary) -> str:
    state = "interrupted" if summary.interrupted else ("ok" if summary.ok else "failed")
    links = " · ".join(
        f'<a href="#{section_anchor(name)}">{_e(name)}</a>' for name in summary.by_scenario()
    )
    return (
        f"<header><h1>Connection-lifecycle regress {_e(summary.run_id)}</h1>"
        f'<p class="headline {state}">{_e(headline(summary))}</p>'
        f"<p>Started {_e(summary.started)} · scenarios: {links}</p>"
        f"{_facts(summary)}</header>"
    )


def _facts(summary: RegressSummary) -> str:
    """The environment every run shares, in one line (the rest: see :func:`_environment`)."""
    common, _ = _split_environment(summary)
    if not common:
        return ""
    items = " · ".join(f"<b>{_e(k)}</b> {_e(v)}" for k, v in sorted(common.items()))
    return f'<p class="facts">Every run: {items}</p>'


def _split_environment(
    summary: RegressSummary,
) -> tuple[dict[str, str], list[tuple[str, dict[str, str]]]]:
    """(facts every run shares, [(run, its values of the keys that differ between runs)]).
    A run that does not record a key has the summary's value for it."""
    runs = [
        (f"{e.scenario} / {e.label}" + (f" run {n}" if len(e.runs) > 1 else ""), r.environment)
        for e in summary.entries
        for n, r in enumerate(e.runs, start=1)
    ]
    keys = dict.fromkeys([*summary.environment, *(k for _, env in runs for k in env)])

    def value(env: Mapping[str, str], key: str) -> str:
        return str(env.get(key, summary.environment.get(key, "")))

    common, differ = {}, []
    for key in keys:
        values = {value(env, key) for _, env in runs} or {value(summary.environment, key)}
        if len(values) == 1:
            common[key] = values.pop()
        else:
            differ.append(key)
    rows = [(where, {k: value(env, k) for k in differ}) for where, env in runs]
    return common, (rows if differ else [])


def _overview(summary: RegressSummary) -> str:
    grid = overview(summary)
    head = "".join(f"<th>{_e(c)}</th>" for c in grid.columns)
    rows = []
    for scenario, cells in grid.rows:
        tds = "".join(_grid_cell(blocks) for blocks in cells)
        link = f'<a href="#{section_anchor(scenario)}">{_e(scenario)}</a>'
        rows.append(f'<tr><th class="l">{link}</th>{tds}</tr>')
    legend = "".join(f'<span class="{state}">{_e(text)}</span>' for state, text in STATES)
    return (
        '<section id="overview"><h2>Overview</h2>'
        "<p>Each cell: the verdict of one variant in one scenario. A buggy variant is "
        "<em>meant</em> to fail: its failure means the harness caught the bug.</p>"
        f'<p class="legend">{legend}</p><div class="fit">'
        # the scenario column is wide enough for a name's longest part (15 variants fit 1280 px)
        '<table class="grid"><colgroup><col class="scenario"></colgroup>'
        f'<thead><tr><th class="l">scenario</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _grid_cell(blocks: Sequence[GridCell]) -> str:
    if not blocks:
        return '<td class="none" title="not run in this scenario">—</td>'
    # One block fills its cell: colour the cell too, so no white shows below a short block.
    fill = f' class="{blocks[0].state}"' if len(blocks) == 1 else ""
    return f"<td{fill}>{''.join(_block(b) for b in blocks)}</td>"


def _block(cell: GridCell) -> str:
    """One grid block linking to the table row: the outcome (and the expectation when the
    outcome differs from it; the colour says the rest) and the deciding figure."""
    entry, v = cell.entry, cell.entry.verdict
    where = f"openai {entry.line}: " if entry.line else ""
    title = f"{entry.scenario} / {entry.label}: {v.outcome}, expected {v.expected}"
    return (
        f'<a class="{cell.state}" href="#{row_anchor(entry)}" title="{_e(title)}">'
        f"<b>{_e(where + CELL_WORDS[cell.state].format(outcome=v.outcome))}</b>"
        + "".join(f"<small>{_breakable(text)}</small>" for text in cell.figure)
        + "</a>"
    )


def _breakable(text: str) -> str:
    """``text`` escaped, with a line-break chance after each ``_``: a narrow grid cell breaks
    ``close_wait_live_after_gc`` between its words, not inside one."""
    return _e(text).replace("_", "_<wbr>")


def _table(entries: Sequence[RegressEntry], pen_of: Mapping[str, Pen]) -> str:
    head = "".join(
        f'<th class="{"l" if i < TEXT_COLUMNS else ""}">{_e(c)}</th>' for i, c in enumerate(COLUMNS)
    )
    rows = []
    for entry, row in zip(entries, table_rows(entries), strict=True):
        swatch = f'<span class="swatch" style="background:{pen_of[entry.label].colour}"></span>'
        cells = [f'<td class="l">{swatch}{_e(row[0])}</td>']
        for i, value in enumerate(row[1:], start=1):
            cls = "l" if i < TEXT_COLUMNS else ""
            if i == 3:
                cls += " yes" if entry.as_expected else " no"
            elif i == 4:  # errors by type: long exception names may wrap, numbers may not
                cls += " err"
            cells.append(f'<td class="{cls.strip()}">{_e(value)}</td>')
        bad = "" if entry.as_expected else ' class="bad"'
        rows.append(f'<tr id="{row_anchor(entry)}"{bad}>{"".join(cells)}</tr>')
    return (
        f'<div class="fit"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _held(entries: Sequence[RegressEntry]) -> str:
    """The short "held by" table (attribution on), or nothing."""
    rows = held_rows(entries)
    if not rows:
        return ""
    head = "".join(f'<th class="l">{_e(c)}</th>' for c in HELD_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f'<td class="l">{_e(c)}</td>' for c in r) + "</tr>" for r in rows
    )
    return (
        f'<h3>Held by</h3><div class="fit"><table class="held"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _reasons(entries: Sequence[RegressEntry]) -> str:
    failed = [e for e in entries if not e.as_expected]
    if not failed:
        return "<p>Every variant behaved as the scenario expects.</p>"
    items = []
    for entry in failed:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in reason_lines(entry))
        items.append(
            f"<li><b>{_e(entry.label)}</b>: expected {_e(entry.verdict.expected)}, "
            f"got {_e(entry.verdict.outcome)}<ul>{reasons}</ul></li>"
        )
    return f'<h3>Not as expected</h3><ul class="reasons">{"".join(items)}</ul>'


def _scenario(
    name: str, entries: Sequence[RegressEntry], summary: RegressSummary, pen_of: Mapping[str, Pen]
) -> str:
    charts, flat = _charts(entries, pen_of)
    settings = summary.scenarios.get(name)
    details = (
        "<details><summary>scenario settings</summary><pre>"
        f"{_e(json.dumps(settings, indent=2, default=str))}</pre></details>"
        if settings
        else ""
    )
    desc = entries[0].description
    marks = next((m for e in entries if (m := event_marks(e.result))), "")
    if marks:
        flat += f'<p class="flat">Lifecycle events: {_e(marks)}</p>'
    return (
        f'<section id="{section_anchor(name)}"><h2>{_e(name)}</h2>'
        + (f'<p class="desc">{_e(desc)}</p>' if desc else "")
        + (f'<div class="charts">{charts}</div>' if charts else "")
        + flat
        + _table(entries, pen_of)
        + _held(entries)
        + _reasons(entries)
        + details
        + "</section>"
    )


def _charts(entries: Sequence[RegressEntry], pen_of: Mapping[str, Pen]) -> tuple[str, str]:
    """(charts, one-line notes): a chart whose every value is 0 becomes a line of text."""
    series = {e.label: e.result.close_wait_series for e in entries}
    bars = {
        e.label: (
            ("errors", e.result.errors),
            ("retries", e.result.retries),
            ("SDK retries", e.result.sdk_retries),
        )
        for e in entries
    }
    charts, flat = [], []
    if any(v for values in series.values() for v in values):
        charts.append(
            line_chart(
                series,
                pen_of,
                title="CLOSE_WAIT sockets after each turn",
                x_label="turn",
                y_label="CLOSE_WAIT",
            )
        )
    else:
        flat.append("CLOSE_WAIT after each turn: 0 for every variant on every turn.")
    if any(v for group in bars.values() for _, v in group):
        charts.append(
            bar_chart(
                bars,
                pen_of,
                title="Errors, server-seen and SDK retries per variant",
                y_label="count",
            )
        )
    else:
        flat.append("Errors, server-seen and SDK retries: 0 for every variant.")
    return "".join(charts), "".join(f'<p class="flat">{_e(text)}</p>' for text in flat)


def _pens(entries: Sequence[RegressEntry]) -> dict[str, Pen]:
    """A pen per entry label: the variant's colour, and across SDK lines a dash per line."""
    by_variant = pens(e.variant for e in entries)
    lines = list(dict.fromkeys(e.line for e in entries))
    out = {}
    for e in entries:
        pen = by_variant[e.variant]
        if e.line:
            pen = dataclasses.replace(pen, dash=DASHES[lines.index(e.line) % len(DASHES)])
        out[e.label] = pen
    return out


def _environment(summary: RegressSummary) -> str:
    """Every run's environment: the facts all share, then the runs whose values differ,
    with only the keys that differ."""
    common, differ = _split_environment(summary)
    rows = "".join(
        f'<tr><th class="l">{_e(k)}</th><td class="l">{_e(v)}</td></tr>'
        for k, v in sorted(common.items())
    )
    diffs = "".join(
        f"<li>{_e(where)}: "
        + _e(", ".join(f"{k}={v}" for k, v in sorted(values.items())))
        + "</li>"
        for where, values in differ
    )
    extra = f"<p>Runs that differ:</p><ul>{diffs}</ul>" if diffs else ""
    return (
        '<section id="environment"><h2>Environment</h2><p>Shared by every run:</p>'
        f"<table>{rows}</table>{extra}</section>"
    )


def render_html(summary: RegressSummary) -> str:
    """The whole report.html text."""
    pen_of = _pens(summary.entries)
    sections = _overview(summary) + "".join(
        _scenario(name, entries, summary, pen_of) for name, entries in summary.by_scenario().items()
    )
    if not summary.entries:
        sections = "<section><p>No cell finished before the run ended.</p></section>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>regress {_e(summary.run_id)}</title><style>{CSS}</style></head><body>"
        f"{_header(summary)}{sections}{_environment(summary)}</body></html>\n"
    )
