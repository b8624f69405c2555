"""summary.md: a headline, one table per scenario (one row per variant), then the reasons.

In a report that combines SDK lines there is one row per variant and line, labelled
``variant [openai N]`` (:attr:`RegressEntry.label`).

The same rows feed the HTML table (:func:`table_rows`), so both formats always show the same
numbers, each read straight from the :class:`RunResult` and :class:`Verdict` fields.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.holders import ROW_HEADER
from harness.holders import row as holder_row
from harness.report.text import plural, reason_lines
from harness.result import RunResult, event_marks, held_sample
from harness.verdict import RegressEntry, RegressSummary

__all__ = [
    "COLUMNS",
    "HELD_COLUMNS",
    "TEXT_COLUMNS",
    "headline",
    "held_rows",
    "not_as_expected",
    "reason_lines",
    "render_markdown",
    "table_rows",
]

COLUMNS: tuple[str, ...] = (
    "variant",
    "expected",
    "outcome",
    "as expected",
    "errors (by type)",
    "retries",
    "SDK retries",
    "CLOSE_WAIT peak",
    "growth",
    "live after GC",
    "after close",
    "after GC",
    "connections",
    "p95 ms",
    "wall s",
)
TEXT_COLUMNS = 5  # the first five columns hold text (left-aligned), the rest numbers
# The "held by" table under a scenario's table (attribution on; docs/attribution.md).
HELD_COLUMNS: tuple[str, ...] = ("variant", "sample", *ROW_HEADER)


def headline(summary: RegressSummary) -> str:
    """One line: cells, how many as expected, wall time, and the overall state."""
    cells = len(summary.entries)
    good = sum(1 for e in summary.entries if e.as_expected)
    state = "INTERRUPTED" if summary.interrupted else ("OK" if summary.ok else "FAILED")
    partial = (
        " (partial: the run was interrupted; only finished cells are shown)"
        if summary.interrupted
        else ""
    )
    return (
        f"{state}: {plural(cells, 'cell')}, {good} as expected, wall {summary.wall_s:.1f} s"
        f" ({summary.command} {summary.run_id}){partial}"
    )


def _errors(result: RunResult) -> str:
    if not result.errors_by_type:
        return str(result.errors)
    kinds = ", ".join(f"{name} {count}" for name, count in sorted(result.errors_by_type.items()))
    return f"{result.errors} ({kinds})"


def _outcome(entry: RegressEntry) -> str:
    result, verdict = entry.result, entry.verdict
    text = verdict.outcome if result.status == "completed" else f"fail ({result.status})"
    runs = len(entry.runs)
    if runs > 1:
        good = sum(1 for v in entry.verdicts if v.as_expected)
        text += f"; {good}/{runs} runs as expected"
    return text


def _growth(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


def table_rows(entries: Sequence[RegressEntry]) -> list[tuple[str, ...]]:
    """One row of display strings per entry, in :data:`COLUMNS` order."""
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        r = entry.result
        rows.append(
            (
                f"{entry.label} ({r.client_kind})" if r.client_kind else entry.label,
                entry.verdict.expected,
                _outcome(entry),
                "yes" if entry.as_expected else "NO",
                _errors(r),
                str(r.retries),
                str(r.sdk_retries),
                str(r.close_wait_peak),
                _growth(r.close_wait_growth),
                str(r.close_wait_live_after_gc),
                str(r.close_wait_after_close),
                str(r.close_wait_after_gc),
                str(r.connections),
                f"{r.latency_p95_ms:.1f}",
                f"{r.wall_s:.2f}",
            )
        )
    return rows


def held_rows(entries: Sequence[RegressEntry]) -> list[tuple[str, ...]]:
    """One row per holder of each entry's :func:`~harness.result.held_sample`, in
    :data:`HELD_COLUMNS` order; none when attribution was off or nothing was held."""
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        sample = held_sample(entry.result)
        if sample is not None:
            rows += [(entry.label, sample.label, *holder_row(h)) for h in sample.held_by]
    return rows


def not_as_expected(summary: RegressSummary) -> list[RegressEntry]:
    """The entries whose verdicts differ from the scenario's expectation, in run order."""
    return [e for e in summary.entries if not e.as_expected]


def _cell(text: str) -> str:
    # Pipes end a cell, newlines end a row, and GitHub renders inline HTML: neutralise all.
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _table(entries: Sequence[RegressEntry]) -> list[str]:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(":--" if i < TEXT_COLUMNS else "--:" for i in range(len(COLUMNS))) + "|",
    ]
    for row in table_rows(entries):
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


def render_markdown(summary: RegressSummary) -> str:
    """The whole summary.md text."""
    lines = [
        f"## Connection-lifecycle regress: {_cell(summary.run_id)}",
        "",
        f"**{_cell(headline(summary))}**",
        "",
    ]
    for scenario, entries in summary.by_scenario().items():
        lines.append(f"### {_cell(scenario)}")
        description = entries[0].description
        if description:
            lines += ["", _cell(description)]
        marks = next((m for e in entries if (m := event_marks(e.result))), "")
        if marks:
            lines += ["", f"Lifecycle events: {_cell(marks)}"]
        lines += ["", *_table(entries), ""]
        held = held_rows(entries)
        if held:
            lines += ["Held by:", "", "| " + " | ".join(HELD_COLUMNS) + " |"]
            lines.append("|" + "|".join(":--" for _ in HELD_COLUMNS) + "|")
            lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in held]
            lines.append("")
    failed = not_as_expected(summary)
    if failed:
        lines += ["### Not as expected", ""]
        for entry in failed:
            lines.append(
                f"- **{_cell(entry.scenario)} / {_cell(entry.label)}**: expected "
                f"{entry.verdict.expected}, got {entry.verdict.outcome}"
            )
            lines += [f"  - {_cell(reason)}" for reason in reason_lines(entry)]
        lines.append("")
    return "\n".join(lines)
