"""Terminal text: the tables and lines ``run``, ``regress`` and ``check`` print.

A renderer beside JSON, JUnit, Markdown and HTML: it reads the same
:class:`~harness.verdict.RegressSummary` / :class:`~harness.result.RunResult` /
:class:`~harness.verdict.Verdict` values and computes nothing. Commands print what it returns.

Width: every function takes ``width``, the terminal's columns, or :data:`WIDE` (off a TTY,
or ``--wide``). At :data:`WIDE` the output is the stable format scripts and CI logs read:
every column, one line per row, nothing cut. At a finite width no line is longer than it:
table columns are dropped from the least important up (the columns a verdict is decided on,
those the run's ``expect:`` thresholds bound, come first: :func:`regress_ranks`), a name
still too long is cut with ``…``, and prose lines wrap with an indent.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from harness.holders import describe
from harness.result import RunResult, held_sample, is_turn_label, turn_label
from harness.verdict import RegressEntry, RegressSummary, Verdict

__all__ = [
    "REGRESS_COLUMNS",
    "WIDE",
    "check_conclusion",
    "check_run_line",
    "fit_table",
    "format_table",
    "held_by_lines",
    "plural",
    "reason_lines",
    "recap",
    "regress_line",
    "regress_opening",
    "regress_ranks",
    "render_regress",
    "run_heading",
    "run_totals",
    "run_verdict",
    "terminal_width",
    "turn_table",
    "wrap",
]

WIDE = math.inf
"""The width meaning "no limit": the stable, complete format."""

_MIN_NAME = 12  # a variant name is never cut shorter than this


def terminal_width(out: TextIO, *, wide: bool) -> float:
    """The columns to fit: :data:`WIDE` off a terminal or when ``wide``, else the terminal's
    width (``COLUMNS`` wins, as :func:`shutil.get_terminal_size` reads it)."""
    if wide or not out.isatty():
        return WIDE
    return shutil.get_terminal_size().columns


def plural(count: int, word: str, words: str = "") -> str:
    """``1 run``, ``2 runs``; ``words`` for an irregular plural."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def wrap(text: str, width: float, indent: str = "    ") -> str:
    """``text`` as is at :data:`WIDE`, else wrapped to ``width`` with continuation lines
    indented by ``indent`` beyond the first line's own indent."""
    if width == WIDE or len(text) <= width:
        return text
    lead = text[: len(text) - len(text.lstrip())]
    return textwrap.fill(
        text.strip(),
        width=int(width),
        initial_indent=lead,
        subsequent_indent=lead + indent,
        break_on_hyphens=False,
        break_long_words=True,
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: numeric columns right-aligned, text columns left-aligned."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join(line(r) for r in cells)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


@dataclass(frozen=True)
class _Fit:
    """Which columns of a table fit a width, and how long a first-column text may be."""

    columns: tuple[int, ...]
    name_room: int

    def render(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
        def pick(row: Sequence[object], first: object) -> list[object]:
            return [first if i == 0 else row[i] for i in self.columns]

        return format_table(
            [str(x) for x in pick(header, header[0])],
            [pick(r, _clip(str(r[0]), self.name_room)) for r in rows],
        )


def _fit(
    header: Sequence[str], rows: Sequence[Sequence[object]], width: float, ranks: Sequence[int]
) -> _Fit:
    """Drop columns from the highest rank (never the three first of rank) until the table
    fits, then cut the first column's texts (never below :data:`_MIN_NAME`)."""
    order = list(ranks) or list(range(len(header)))
    keep = sorted(range(len(header)), key=lambda i: order[i])
    longest = max((len(str(r[0])) for r in rows), default=0)
    fit = _Fit(tuple(sorted(keep)), longest)
    while len(keep) > 3 and _widest(fit.render(header, rows)) > width:
        keep.pop()
        fit = _Fit(tuple(sorted(keep)), longest)
    over = _widest(fit.render(header, rows)) - width
    if over > 0:
        fit = _Fit(fit.columns, max(_MIN_NAME, longest - int(over)))
    return fit


def fit_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    width: float,
    ranks: Sequence[int] = (),
) -> str:
    """:func:`format_table` within ``width``: columns dropped from the highest rank (least
    important; default: the last column first) until it fits, never the first three of
    rank, then the first column's texts cut with ``…``."""
    return _fit(header, rows, width, ranks).render(header, rows)


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1] + "…"


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


# ---- regress ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    title: str
    rank: int
    value: Callable[[RegressEntry], object]
    threshold: str = ""  # the `expect:` key that bounds this column, if any


def _outcome(entry: RegressEntry) -> str:
    return entry.verdict.outcome + ("" if entry.as_expected else " !")


REGRESS_COLUMNS: tuple[_Column, ...] = (
    # in display order; rank: which go first when the terminal is narrow (the highest).
    # The verdict is decided on expect:'s thresholds, so the columns a scenario of the run
    # sets one for rank first (:func:`regress_ranks`), then these ranks decide.
    _Column("variant", 0, lambda e: e.label),
    _Column("expect", 1, lambda e: e.verdict.expected),
    _Column("outcome", 2, _outcome),
    _Column("errors", 3, lambda e: e.result.errors, "errors"),
    _Column("retries", 4, lambda e: e.result.retries, "retries"),
    _Column("sdk retries", 9, lambda e: e.result.sdk_retries, "sdk_retries"),
    _Column("cw peak", 5, lambda e: e.result.close_wait_peak, "close_wait_peak"),
    _Column("cw growth", 6, lambda e: e.result.close_wait_growth, "close_wait_growth"),
    _Column(
        "cw live gc", 7, lambda e: e.result.close_wait_live_after_gc, "close_wait_live_after_gc"
    ),
    _Column("cw after gc", 8, lambda e: e.result.close_wait_after_gc, "close_wait_after_gc"),
    _Column("conns", 10, lambda e: e.result.connections, "connections"),
    _Column("p95 ms", 11, lambda e: f"{e.result.latency_p95_ms:.0f}", "p95_latency_ms"),
    _Column("wall s", 12, lambda e: f"{e.result.wall_s:.2f}"),
)
"""The comparison table's columns, most important first (see the module docstring)."""

_UNBOUNDED = 100  # added to the rank of a column no scenario of the run sets a threshold for


def regress_ranks(summary: RegressSummary) -> list[int]:
    """The rank of each of :data:`REGRESS_COLUMNS` for ``summary``: variant, expect and outcome
    first, then the columns an ``expect:`` threshold of one of its scenarios bounds (they
    decide verdicts), then the rest; :data:`REGRESS_COLUMNS`' order within each group. A
    summary without its scenarios (an older results.json) keeps the fixed order."""
    bounded = {
        key
        for scenario in summary.scenarios.values()
        for key, limit in (scenario.get("expect") or {}).items()
        if limit is not None
    }
    if not bounded:
        return [c.rank for c in REGRESS_COLUMNS]
    return [
        c.rank if c.rank < 3 or c.threshold in bounded else c.rank + _UNBOUNDED
        for c in REGRESS_COLUMNS
    ]


def regress_opening(cells: int, repeat: int, scenarios: int, jobs: int, shard: str) -> str:
    """The line ``regress`` opens with: what it is about to run."""
    runs = f", {plural(repeat, 'run')} each" if repeat > 1 else ""
    where = f", shard {shard}" if shard else ""
    return (
        f"regress: {plural(cells, 'cell')} from {plural(scenarios, 'scenario')}{runs}, "
        f"{plural(jobs, 'job')}{where}"
    )


def regress_line(entry: RegressEntry) -> str:
    """The line printed when a cell finishes (the plain output CI logs show)."""
    mark = "ok " if entry.as_expected else "BAD"
    v = entry.verdict
    return f"  {mark} {entry.scenario} / {entry.label}: {v.outcome} (expected {v.expected})"


def reason_lines(entry: RegressEntry) -> list[str]:
    """Why one entry is not as expected, one line per reason."""
    verdict = entry.verdict
    if verdict.reasons:
        return list(verdict.reasons)
    # Healthy but expected to fail: no threshold was exceeded, so the bug went uncaught.
    return [f"healthy, but expected {verdict.expected}: no expect: threshold was exceeded"]


def render_regress(summary: RegressSummary, width: float = WIDE) -> str:
    """The comparison table (one block per scenario, variants side by side), the count, and
    the :func:`recap` of cells not as expected."""
    blocks = []
    header = [c.title for c in REGRESS_COLUMNS]
    ranks = regress_ranks(summary)
    every = [[c.value(e) for c in REGRESS_COLUMNS] for e in summary.entries]
    fit = _fit(header, every, width - 2, ranks)  # the same columns in every block
    for scenario, entries in summary.by_scenario().items():
        blocks.append(scenario)
        blocks.append(
            _indent(fit.render(header, [[c.value(e) for c in REGRESS_COLUMNS] for e in entries]))
        )
    bad = [e for e in summary.entries if not e.as_expected]
    head = (
        f"{plural(len(summary.entries), 'cell')}, {len(summary.entries) - len(bad)} as "
        f"expected, {len(bad)} not, in {summary.wall_s:.1f} s"
    )
    if summary.interrupted:
        head += " (INTERRUPTED: partial results)"
    return "\n".join([*blocks, "", *recap(summary, width), head])


def recap(summary: RegressSummary, width: float = WIDE) -> list[str]:
    """``Not as expected:`` and one line per such cell with its reasons (then a blank line),
    or nothing when every cell is as expected."""
    bad = [e for e in summary.entries if not e.as_expected]
    if not bad:
        return []
    lines = [f"Not as expected ({len(bad)}):"]
    for e in bad:
        v = e.verdict
        text = f"  {e.scenario} / {e.label}: expected {v.expected}, got {v.outcome}: "
        lines.append(wrap(text + "; ".join(reason_lines(e)), width))
    return [*lines, ""]


# ---- run ----------------------------------------------------------------------------------


def run_heading(scenario: str, variant: str, run: RunResult, index: int, runs: int) -> str:
    """The line above one run's turn table."""
    label = f" (run {index} of {runs})" if runs > 1 else ""
    kind = f", {run.client_kind} client" if run.client_kind else ""
    return f"{scenario} / {variant}{label}: {run.status}{kind}, {run.wall_s:.2f} s"


def turn_table(run: RunResult, width: float = WIDE) -> str:
    """One row per turn: calls, errors, and the sockets sampled after the turn."""
    calls = Counter(r.turn for r in run.records)
    errors = Counter(r.turn for r in run.records if not r.ok)
    first_error: dict[int, str] = {}
    for r in run.records:
        if not r.ok and r.turn not in first_error:
            first_error[r.turn] = r.error_type or "?"
    rows = [
        [
            turn_label(s),  # marks the turn where a lifecycle event ran
            calls[s.turn],
            errors[s.turn],
            s.close_wait,
            s.established,
            s.fds,
            first_error.get(s.turn, ""),
        ]
        for s in run.samples
        if is_turn_label(s.label)
    ]
    header = ("turn", "calls", "errors", "close_wait", "established", "fds", "first error")
    table = format_table(header, rows)
    return (
        table
        if _widest(table) <= width
        else "\n".join(_clip(line, int(width)) for line in table.splitlines())
    )


def run_totals(run: RunResult, width: float = WIDE) -> str:
    """Every metric of one run in a sentence (and the run's status detail, if any)."""
    by_type = ", ".join(f"{k} x{v}" for k, v in run.errors_by_type.items()) or "none"
    text = (
        f"calls {run.calls}, errors {run.errors} ({by_type}), retries {run.retries} "
        f"(SDK retries {run.sdk_retries}), connections {run.connections}, CLOSE_WAIT peak "
        f"{run.close_wait_peak} growth {run.close_wait_growth} live after gc "
        f"{run.close_wait_live_after_gc} after close {run.close_wait_after_close} "
        f"after gc {run.close_wait_after_gc}, p95 {run.latency_p95_ms:.0f} ms"
    )
    lines = [wrap(text, width)]
    if run.detail:
        lines.append(wrap(f"{run.status}: {run.detail}", width))
    return "\n".join(lines)


def held_by_lines(run: RunResult, width: float = WIDE, frames: int = 4) -> str:
    """Who holds the sockets of :func:`~harness.result.held_sample` (attribution on), each
    with its first ``frames`` stack frames, the user's first; "" when nothing is held."""
    sample = held_sample(run)
    if sample is None:
        return ""
    lines = [f"held by ({sample.label}):"]
    for holder in sample.held_by:
        lines.append(wrap(f"  {describe(holder)}", width))
        lines += [wrap(f"      {frame}", width) for frame in holder.stack[:frames]]
    return "\n".join(lines)


def run_verdict(verdict: Verdict, width: float = WIDE) -> str:
    """The verdict line under a run."""
    reasons = "; ".join(verdict.reasons) or "within every threshold"
    text = f"verdict: {verdict.outcome.upper()} ({reasons}); expected {verdict.expected}"
    return wrap(text, width)


# ---- check --------------------------------------------------------------------------------


def check_run_line(run: RunResult, verdict: Verdict, width: float = WIDE) -> str:
    """One line per run of ``harness check``: key metrics and the verdict with its reasons."""
    why = "; ".join(verdict.reasons) or "within every threshold"
    text = (
        f"  {run.status}: errors {run.errors}, retries {run.retries} (SDK {run.sdk_retries}), "
        f"CLOSE_WAIT growth {run.close_wait_growth}, live after gc "
        f"{run.close_wait_live_after_gc}: {verdict.outcome} ({why})"
    )
    return wrap(text, width)


def check_conclusion(word: str, policy: str, runs: int) -> str:
    """``check: healthy (1 run)`` or ``check: regression (majority of 3 runs)``."""
    how = f"{policy} of {runs} runs" if runs > 1 else "1 run"
    return f"check: {word} ({how})"
