"""What a bisect reports: progress lines, ``bisect.json`` and ``bisect.md``.

Everything here is pure: it formats :class:`StepRecord` values and the report dict the driver
assembles; the driver writes the files atomically
(:func:`harness.report.layout.atomic_write_text`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.bisect_step import StepRecord

__all__ = [
    "bound_message",
    "build_report",
    "expected_steps",
    "overheads",
    "progress_line",
    "render_markdown",
]


def _series(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values) if values else "-"


def progress_line(record: StepRecord) -> str:
    """One line per tested commit: what it is, the verdict, the term and key metrics."""
    m = record.metrics
    head = f"{record.label:<10} {record.short}  {_clip(record.subject, 40):<40}"
    verdict = f"{record.verdict} -> {record.term}"
    if record.verdict in ("untestable", "error"):
        return f"{head}  {verdict}: {record.detail or 'no detail'}  ({record.step_s:.1f} s)"
    disagree = f"  disagree {record.disagree}/{record.runs}" if record.runs > 1 else ""
    return (
        f"{head}  {verdict}  errors {_series(m.errors)} retries {_series(m.retries)} "
        f"CLOSE_WAIT growth {_series(m.close_wait_growth)}{disagree}  ({record.step_s:.1f} s)"
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def expected_steps(candidates: int) -> int:
    """``ceil(log2(candidates))``: the oracle calls a bisect needs without skips."""
    return math.ceil(math.log2(candidates)) if candidates > 1 else 0


def overheads(records: Sequence[StepRecord]) -> list[float]:
    """Seconds each step cost beyond its scenario runs' own wall time: git's bookkeeping and
    checkout since the previous step ended, process starts, the oracle's setup."""
    out: list[float] = []
    for prev, rec in itertools.pairwise(records):
        gap = max(0.0, rec.started - prev.finished)
        out.append(round(gap + rec.step_s - rec.metrics.scenario_s, 3))
    return out


def build_report(
    setup: Mapping[str, Any],
    outcome: Mapping[str, Any],
    found: Mapping[str, Any],
    records: Sequence[StepRecord],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """``bisect.json``: ``setup`` (what was asked), ``outcome`` (status, exit code, message),
    ``found`` (result, possible) and the step records (bounds first), with derived totals."""
    steps = [r for r in records if not r.label.endswith("bound")]
    bounds = {r.label.split()[0]: r.to_dict() for r in records if r.label.endswith("bound")}
    terms = setup["terms"]
    costs = overheads(records)[-len(steps) :] if steps else []
    return {
        **{k: v for k, v in setup.items() if k not in ("bounds", "oracle_command")},
        **outcome,
        "oracle": {
            "command": setup["oracle_command"],
            "calls": len(records),
            "bisect_calls": len(steps),
            "runs": sum(r.runs for r in records),
        },
        "bounds": {
            side: {**setup["bounds"][side], "record": bounds.get(terms[side])}
            for side in ("old", "new")
        },
        "expected_steps": expected_steps(setup["candidates"]),
        **found,
        "skipped": [
            {"sha": r.sha, "short": r.short, "subject": r.subject, "detail": r.detail}
            for r in steps
            if r.term == "skip"
        ],
        "steps": [r.to_dict() for r in records],
        "timings": {
            **timings,
            "scenario_s": round(sum(r.metrics.scenario_s for r in records), 3),
            "overhead_per_step_s": costs,
            "overhead_mean_s": round(sum(costs) / len(costs), 3) if costs else 0.0,
            "overhead_max_s": max(costs, default=0.0),
        },
    }


def bound_message(option: str, record: StepRecord, want: str) -> str:
    """Why a bound is wrong, in one line: what the oracle measured there."""
    m = record.metrics
    if record.verdict in ("untestable", "error"):
        measured = f"{record.verdict} (check exit {record.oracle_exit}): {record.detail}"
    else:
        unhealthy = sum(1 for h in m.healthy if not h)
        measured = (
            f"{record.verdict} ({unhealthy}/{len(m.healthy)} runs unhealthy; errors "
            f"{_series(m.errors)}, retries {_series(m.retries)}, CLOSE_WAIT growth "
            f"{_series(m.close_wait_growth)}"
            + (f"; {'; '.join(m.reasons)}" if m.reasons else "")
            + ")"
        )
    return f"{option} {record.short} should be {want} but the oracle found it {measured}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """``bisect.md``: the result, the bounds, every step and the costs."""
    lines = [f"# Bisect {report['id']}", "", f"**{report['message']}**", ""]
    lines += [*_setup(report), "", *_table(report), ""]
    skipped = report["skipped"]
    if skipped:
        lines += ["## Skipped (untestable) commits", ""]
        lines += [f"- `{s['short']}` {s['subject']}: {s['detail']}" for s in skipped] + [""]
    lines += _costs(report)
    return "\n".join(lines) + "\n"


def _setup(report: Mapping[str, Any]) -> list[str]:
    old, new = report["bounds"]["old"], report["bounds"]["new"]
    return [
        f"- search: {report['search']} (`{old['option']} {old['ref']}` = `{old['sha'][:12]}`,"
        f" `{new['option']} {new['ref']}` = `{new['sha'][:12]}`), "
        f"{report['candidates']} candidate commits",
        f"- repository: `{report['repo']}`",
        f"- scenario: `{report['scenario']}`; factory: `{report['factory']}`",
        f"- repeat {report['repeat']}, policy {report['policy']}"
        + (f"; install: `{report['install']}`" if report["install"] else ""),
        f"- status: {report['status']} (exit {report['exit_code']})",
    ]


def _table(report: Mapping[str, Any]) -> list[str]:
    rows = [
        "| # | step | commit | subject | verdict | term | errors | retries "
        "| CLOSE_WAIT growth | disagree | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in report["steps"]:
        m = rec["metrics"]
        rows.append(
            f"| {rec['index']} | {rec['label']} | `{rec['short']}` | {_cell(rec['subject'])} "
            f"| {rec['verdict']} | {rec['term']} | {_series(m['errors'])} "
            f"| {_series(m['retries'])} | {_series(m['close_wait_growth'])} "
            f"| {rec['disagree']}/{rec['runs']} | {rec['step_s']:.2f} |"
        )
    return ["## Steps", "", *rows]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _costs(report: Mapping[str, Any]) -> list[str]:
    oracle, t = report["oracle"], report["timings"]
    return [
        "## Cost",
        "",
        f"- oracle calls: {oracle['calls']} ({oracle['bisect_calls']} inside git bisect, "
        f"{oracle['runs']} scenario runs); ceil(log2({report['candidates']})) = "
        f"{report['expected_steps']}",
        f"- wall time: {t['wall_s']:.1f} s (clone {t['clone_s']:.2f} s, bounds "
        f"{t['bounds_s']:.1f} s, git bisect run {t['bisect_s']:.1f} s)",
        f"- scenario runs' own time: {t['scenario_s']:.1f} s; overhead per bisect step "
        f"beyond it: mean {t['overhead_mean_s']:.2f} s, max {t['overhead_max_s']:.2f} s",
    ]
