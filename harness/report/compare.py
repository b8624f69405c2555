"""``harness compare BASE.json NEW.json``: what changed per (scenario, variant).

Exit 1 when NEW is worse than BASE on any verdict: a cell that was as expected and no longer
is, or a cell of BASE missing from NEW. Exit 0 otherwise (metrics may still have moved;
they are printed), 2 on bad input. :func:`compare` is pure; the ``compare`` command
(:mod:`harness.commands.compare`) does the I/O.

Cells match by (scenario, variant, SDK line). A one-line results.json has no lines; compared
with a report that combines lines (``nox -s compat``), its cells count as the line of its
openai version, so a single-line BASE matches that line of a compat NEW and vice versa.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from harness.report.merge import sdk_line
from harness.verdict import RegressEntry, RegressSummary

__all__ = ["CellChange", "Comparison", "compare", "render_comparison"]

Change = Literal["worse", "better", "changed", "unchanged", "added", "missing"]

# label -> RunResult attribute, compared on each cell's representative run
_METRICS = (
    ("errors", "errors"),
    ("retries", "retries"),
    ("SDK retries", "sdk_retries"),
    ("CLOSE_WAIT peak", "close_wait_peak"),
    ("CLOSE_WAIT growth", "close_wait_growth"),
    ("CLOSE_WAIT live after GC", "close_wait_live_after_gc"),
)


@dataclass(frozen=True)
class CellChange:
    """One (scenario, variant) cell of the comparison."""

    scenario: str
    variant: str  # with its SDK line when compared across lines: "baseline [openai 3]"
    change: Change
    details: tuple[str, ...]  # "errors 0 -> 9", "verdict pass (as expected) -> fail (NOT ...)"


@dataclass(frozen=True)
class Comparison:
    """Every cell of BASE and NEW, in BASE's order then NEW's additions."""

    base_id: str
    new_id: str
    new_interrupted: bool
    cells: tuple[CellChange, ...]

    @property
    def worse(self) -> tuple[CellChange, ...]:
        return tuple(c for c in self.cells if c.change in ("worse", "missing"))


def _verdict(entry: RegressEntry) -> str:
    mark = "as expected" if entry.as_expected else "NOT as expected"
    return f"{entry.verdict.outcome} ({mark}, expected {entry.verdict.expected})"


def _cell(base: RegressEntry, new: RegressEntry) -> CellChange:
    details = []
    for label, attr in _METRICS:
        old_value, new_value = getattr(base.result, attr), getattr(new.result, attr)
        if old_value != new_value:
            details.append(f"{label} {old_value} -> {new_value}")
    if _verdict(base) != _verdict(new):
        details.append(f"verdict {_verdict(base)} -> {_verdict(new)}")
    change: Change = "changed" if details else "unchanged"
    if base.as_expected and not new.as_expected:
        change = "worse"
    elif new.as_expected and not base.as_expected:
        change = "better"
    return CellChange(base.scenario, base.label, change, tuple(details))


def _with_lines(summary: RegressSummary) -> list[RegressEntry]:
    """Entries tagged with an SDK line: their own, else the summary's openai version."""
    line = sdk_line(summary.environment)
    return [e if e.line else dataclasses.replace(e, line=line) for e in summary.entries]


def compare(base: RegressSummary, new: RegressSummary) -> Comparison:
    """Match cells by (scenario, variant, SDK line) and classify each."""
    if base.lines or new.lines:
        base_entries, new_entries = _with_lines(base), _with_lines(new)
    else:
        base_entries, new_entries = list(base.entries), list(new.entries)
    new_cells = {e.key: e for e in new_entries}
    base_keys = {e.key for e in base_entries}
    cells = []
    for entry in base_entries:
        other = new_cells.get(entry.key)
        if other is None:
            detail = f"in BASE ({_verdict(entry)}), not in NEW"
            cells.append(CellChange(entry.scenario, entry.label, "missing", (detail,)))
        else:
            cells.append(_cell(entry, other))
    for entry in new_entries:
        if entry.key not in base_keys:
            detail = f"new cell: {_verdict(entry)}"
            cells.append(CellChange(entry.scenario, entry.label, "added", (detail,)))
    return Comparison(base.run_id, new.run_id, new.interrupted, tuple(cells))


def render_comparison(result: Comparison) -> str:
    """Human-readable text: one line per cell that changed, then the conclusion."""
    lines = [f"compare {result.base_id} (BASE) -> {result.new_id} (NEW)"]
    if result.new_interrupted:
        lines.append("NEW was interrupted: cells it did not finish count as missing")
    unchanged = 0
    for cell in result.cells:
        if cell.change == "unchanged":
            unchanged += 1
            continue
        lines.append(
            f"{cell.change.upper():9} {cell.scenario} / {cell.variant}: " + "; ".join(cell.details)
        )
    lines.append(f"unchanged: {unchanged} of {len(result.cells)} cells")
    worse = len(result.worse)
    lines.append(
        f"NEW is worse than BASE on {worse} cell{'s' if worse != 1 else ''}"
        if worse
        else "NEW is not worse than BASE on any verdict"
    )
    return "\n".join(lines) + "\n"
