"""The report's overview: a scenario x variant grid; in a compat report each grid cell holds
one block per SDK line, so the grid stays as wide as the variants.

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
    "CELL_WORDS",
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


# state -> the words a grid cell shows: the outcome and what it means, so a caught bug never
# reads as a bare "fail"
CELL_WORDS: dict[State, str] = {
    "healthy": "pass",
    "caught": "fail: bug caught",
    "unhealthy": "fail (expected pass)",
    "missed": "pass (expected fail)",
    "observed": "{outcome} (observed only)",
}


@dataclass(frozen=True)
class GridCell:
    entry: RegressEntry
    state: State
    figure: tuple[str, ...]  # one or two short lines


@dataclass(frozen=True)
class Overview:
    """Rows are scenarios, columns variants, in run order. Each grid cell holds a block per
    SDK line the variant ran on in that scenario (one block in a one-line report; none where
    the scenario does not run the variant)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[tuple[GridCell, ...], ...]], ...]


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
    # "held": what a collection with the gateway still up did not free (the restart symptom)
    held = f"CLOSE_WAIT held {r.close_wait_live_after_gc}"
    return (f"errors {r.errors} · retries {r.retries}", held)


def overview(summary: RegressSummary) -> Overview:
    columns = tuple(dict.fromkeys(e.variant for e in summary.entries))
    rows = []
    for scenario, entries in summary.by_scenario().items():
        cells = tuple(
            tuple(GridCell(e, cell_state(e), deciding_figure(e)) for e in entries if e.variant == v)
            for v in columns
        )
        rows.append((scenario, cells))
    return Overview(columns, tuple(rows))


def section_anchor(scenario: str) -> str:
    """The id of a scenario's section in report.html."""
    return "scenario-" + _slug(scenario)


def row_anchor(entry: RegressEntry) -> str:
    """The id of an entry's table row (inside its scenario's section)."""
    return f"cell-{_slug(entry.scenario)}--{_slug(entry.label)}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
