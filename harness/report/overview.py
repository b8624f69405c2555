"""The report's overview: a scenario x variant (x SDK line) grid, one cell per regress cell.

Pure functions from a :class:`RegressSummary` to grid values; report.html draws them. Each
cell has a *state* (outcome against expectation) and a *deciding figure*: for an unhealthy
run the first reason of its verdict (``errors 9 > 0``), for a healthy one the figures the
scenarios judge most (errors, SDK retries, CLOSE_WAIT still held after the final collection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.verdict import RegressEntry, RegressSummary

__all__ = [
    "STATES",
    "GridCell",
    "Overview",
    "cell_state",
    "deciding_figure",
    "overview",
    "row_anchor",
    "section_anchor",
]

State = Literal["healthy", "caught", "unhealthy", "missed", "observed"]

# state -> what it means, in legend order
STATES: tuple[tuple[State, str], ...] = (
    ("healthy", "healthy, as expected"),
    ("caught", "bug caught, as expected"),
    ("unhealthy", "must pass, failed"),
    ("missed", "bug no longer caught"),
    ("observed", "observed only"),
)


@dataclass(frozen=True)
class GridCell:
    entry: RegressEntry
    state: State
    figure: tuple[str, ...]  # one or two short lines


@dataclass(frozen=True)
class Overview:
    """Rows are scenarios, columns variant labels, in run order; None where a scenario does
    not run that variant."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[GridCell | None, ...]], ...]


def cell_state(entry: RegressEntry) -> State:
    verdict = entry.verdict
    if verdict.expected == "observe":
        return "observed"
    if entry.as_expected:
        return "healthy" if verdict.outcome == "pass" else "caught"
    return "unhealthy" if verdict.expected == "pass" else "missed"


def deciding_figure(entry: RegressEntry) -> tuple[str, ...]:
    """What decided the verdict, in one or two short lines."""
    if entry.verdict.reasons:
        return (entry.verdict.reasons[0],)
    r = entry.result
    return (f"errors {r.errors} · retries {r.retries}", f"CLOSE_WAIT held {r.close_wait_after_gc}")


def overview(summary: RegressSummary) -> Overview:
    columns = tuple(dict.fromkeys(e.label for e in summary.entries))
    rows = []
    for scenario, entries in summary.by_scenario().items():
        by_label = {e.label: e for e in entries}
        cells = tuple(_cell(by_label.get(label)) for label in columns)
        rows.append((scenario, cells))
    return Overview(columns, tuple(rows))


def _cell(entry: RegressEntry | None) -> GridCell | None:
    if entry is None:
        return None
    return GridCell(entry, cell_state(entry), deciding_figure(entry))


def section_anchor(scenario: str) -> str:
    """The id of a scenario's section in report.html."""
    return "scenario-" + _slug(scenario)


def row_anchor(entry: RegressEntry) -> str:
    """The id of an entry's table row (inside its scenario's section)."""
    return f"cell-{_slug(entry.scenario)}--{_slug(entry.label)}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
