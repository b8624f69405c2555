"""What ``harness watch`` shows and writes, from its :class:`~harness.watch.Series` and
:class:`~harness.watch.WatchSummary` values: the live table, the closing lines, JSON Lines,
and with ``--out`` summary.md, report.html (the run reports' styles and charts) and
samples.jsonl. Nothing here computes a decision; every text holds pids, addresses, counts
and times only (no command line, no environment).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

from harness.errors import UsageError
from harness.report.html import CSS
from harness.report.layout import atomic_write_text
from harness.report.svg import line_chart, pens
from harness.report.text import fit_table, plural, wrap
from harness.watch import Counts, Series, Thresholds, WatchSummary, span

__all__ = [
    "WATCH_FILES",
    "conclusion",
    "endpoint_table",
    "json_line",
    "live_view",
    "render_watch_html",
    "render_watch_markdown",
    "write_watch_reports",
]

WATCH_FILES = ("summary.md", "report.html", "samples.jsonl")
HEADER = ("endpoint", "ESTABLISHED", "CLOSE_WAIT", "other", "CW peak", "EST peak")
_CHART_POINTS = 300  # a longer series is charted as the peak of each run of samples
_NONE = "No TCP connection to any endpoint watched at any sample (listening sockets do not count)."
_COUNTS = "Counts at the last sample; CW/EST peak: the highest over the watch."
_ENDED = {
    "duration": "--duration reached",
    "interrupted": "interrupted by {detail}",
    "exited": "{detail} while watched",
}


def json_line(pid: int, series: Series, index: int) -> str:
    """Sample ``index`` as one line of JSON (fields: docs/watch.md)."""
    return json.dumps(series.record(pid, index), separators=(",", ":"))


def endpoint_rows(series: Series) -> list[tuple[object, ...]]:
    """Per endpoint seen: counts at the last sample, then the CLOSE_WAIT and ESTABLISHED
    peaks; a ``total`` row when there is more than one endpoint."""
    if not series.points:
        return []
    last = series.points[-1].sample
    rows: list[tuple[object, ...]] = []
    for ep in series.endpoints():
        now, top = last.endpoints.get(ep, Counts()), series.peaks[ep]
        rows.append(
            (ep, now.established, now.close_wait, now.other, top.close_wait, top.established)
        )
    if len(rows) > 1:
        now, top = last.total, series.total_peak
        rows.append(
            ("total", now.established, now.close_wait, now.other, top.close_wait, top.established)
        )
    return rows


def endpoint_table(series: Series, width: float) -> str:
    rows = endpoint_rows(series)
    if not rows:
        return _NONE
    return fit_table(HEADER, rows, width)


def _status(pid: int, series: Series, interval_s: float) -> str:
    s, first = series.points[-1].sample, series.points[0].sample
    return (
        f"pid {pid} · {s.t:.1f} s · {plural(len(series.points), 'sample')} every "
        f"{interval_s:g} s · fds {s.fds} (first {first.fds}, peak {series.fds_peak})"
    )


def _threshold_lines(series: Series, thresholds: Thresholds) -> list[str]:
    lines = []
    for name, text in thresholds.judged():
        first = series.first_crossed.get(name)
        if first is None:
            lines.append(f"{text}: ok")
        else:
            at = series.points[first]
            value = at.sample.total.close_wait if name == "max_close_wait" else at.growth
            lines.append(f"{text}: CROSSED at {at.sample.t:.1f} s ({value})")
    return lines


def live_view(pid: int, series: Series, interval_s: float, width: float) -> str:
    """The live table's text after the latest sample."""
    window = series.thresholds.over_s
    where = f"within {span(window)}" if window else "since the start"
    prose = [
        f"CLOSE_WAIT growth {where}: {series.points[-1].growth:+d}",
        *(f"threshold {line}" for line in _threshold_lines(series, series.thresholds)),
    ]
    return "\n".join(
        [
            wrap(_status(pid, series, interval_s), width),
            endpoint_table(series, width),
            *(wrap(line, width) for line in prose),
        ]
    )


def conclusion(summary: WatchSummary) -> list[str]:
    """The closing lines: how it ended, the peaks, each threshold, the exit code's meaning."""
    series = summary.series
    ended = _ENDED[summary.ended].format(detail=summary.detail)
    if not series.points:  # ended before its first sample
        return [f"watch: pid {summary.pid}: no sample taken; ended: {ended}", _exit_line(summary)]
    last = series.points[-1].sample
    lines = [
        f"watch: pid {summary.pid}: {plural(len(series.points), 'sample')} over {last.t:.1f} s;"
        f" ended: {ended}",
        f"CLOSE_WAIT peak {series.total_peak.close_wait}, growth peak {series.growth_peak:+d},"
        f" fds {series.points[0].sample.fds} -> {last.fds}",
    ]
    lines += [f"threshold {line}" for line in _threshold_lines(series, series.thresholds)]
    return [*lines, _exit_line(summary)]


def _exit_line(summary: WatchSummary) -> str:
    meaning = {0: "within thresholds", 1: "a threshold was crossed", 3: "the process ended"}
    return f"exit {summary.exit_code}: {meaning[summary.exit_code]}"


def _chart_series(values: Sequence[int]) -> tuple[list[int], int]:
    """``values`` as at most :data:`_CHART_POINTS` points (the peak of each run of ``step``
    samples, so no peak is lost), and ``step``."""
    step = max(1, -(-len(values) // _CHART_POINTS))
    return [max(values[i : i + step]) for i in range(0, len(values), step)], step


def _chart(summary: WatchSummary, data: dict[str, Sequence[int]], title: str, unit: str) -> str:
    """A line per name in ``data`` (report/svg.py), or one line of text when all are 0."""
    points = {name: _chart_series(values) for name, values in data.items()}
    if not any(v for values, _ in points.values() for v in values):
        return f'<p class="flat">{escape(title)}: 0 at every sample.</p>'
    step = max((s for _, s in points.values()), default=1)
    peak = f", peak of each {step}" if step > 1 else ""
    return line_chart(
        {name: values for name, (values, _) in points.items()},
        pens(data),
        title=title,
        x_label=f"sample (every {summary.interval_s:g} s{peak})",
        y_label=unit,
    )


def _charts(summary: WatchSummary) -> str:
    series = summary.series
    endpoints = series.endpoints()
    return "".join(
        _chart(summary, {ep: series.column(ep, state) for ep in endpoints}, title, unit)
        for state, title, unit in (
            ("close_wait", "CLOSE_WAIT sockets per endpoint", "CLOSE_WAIT"),
            ("established", "ESTABLISHED sockets per endpoint", "ESTABLISHED"),
        )
    ) + _chart(summary, {"fds": [s.fds for s in series.samples]}, "Open file descriptors", "fds")


def _facts(summary: WatchSummary) -> list[str]:
    series = summary.series
    return [
        f"Started {summary.started}, {plural(len(series.samples), 'sample')} every "
        f"{summary.interval_s:g} s over {series.samples[-1].t:.1f} s; ended: "
        + _ENDED[summary.ended].format(detail=summary.detail),
        *conclusion(summary)[1:],
    ]


def render_watch_markdown(summary: WatchSummary) -> str:
    """summary.md: the facts, the thresholds, and the per-endpoint table."""
    lines = [f"## harness watch: pid {summary.pid}", ""]
    lines += [f"- {fact}" for fact in _facts(summary)]
    rows = endpoint_rows(summary.series)
    if not rows:
        return "\n".join([*lines, "", _NONE, ""])
    lines += ["", "| " + " | ".join(HEADER) + " |", "|:--" + "|--:" * (len(HEADER) - 1) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += ["", _COUNTS, ""]
    return "\n".join(lines)


def render_watch_html(summary: WatchSummary) -> str:
    """report.html: the same facts and table, and the series charted (report/svg.py)."""
    state = "failed" if summary.exit_code else "ok"
    facts = "".join(f"<li>{escape(f)}</li>" for f in _facts(summary))
    head = "".join(
        f'<th class="{"l" if i == 0 else ""}">{escape(c)}</th>' for i, c in enumerate(HEADER)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if i == 0 else ""}">{escape(str(c))}</td>' for i, c in enumerate(row)
        )
        + "</tr>"
        for row in endpoint_rows(summary.series)
    )
    headline = conclusion(summary)[-1]
    table = (
        f'<div class="fit"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
        f"</table></div><p>{_COUNTS}</p>"
        if rows
        else f"<p>{_NONE}</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>watch pid {summary.pid}</title><style>{CSS}</style></head><body>"
        f"<header><h1>harness watch: pid {summary.pid}</h1>"
        f'<p class="headline {state}">{escape(headline)}</p><ul>{facts}</ul></header>'
        f'<section><h2>Sockets over time</h2><div class="charts">{_charts(summary)}</div>'
        f"{table}</section></body></html>\n"
    )


def write_watch_reports(summary: WatchSummary, out: Path) -> Path:
    """Write :data:`WATCH_FILES` into ``out`` (created if needed), atomically; return it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out folder {str(out)!r}: {exc.strerror}") from exc
    series = summary.series
    jsonl = "".join(json_line(summary.pid, series, i) + "\n" for i in range(len(series.points)))
    for name, text in zip(
        WATCH_FILES,
        (render_watch_markdown(summary), render_watch_html(summary), jsonl),
        strict=True,
    ):
        atomic_write_text(out / name, text)
    return out
