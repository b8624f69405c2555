"""What a bisect shows: progress lines, the wrong-bound message and ``bisect.md``.

Everything here is pure: it formats :class:`StepRecord` values and the :class:`BisectReport`;
the driver writes the files atomically (:func:`harness.report.layout.atomic_write_text`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.bisect.model import BisectRequest, Commit, Observed, Status, StepRecord
from harness.bisect.report import BisectReport

__all__ = [
    "aborted_message",
    "bound_message",
    "conclusion_message",
    "dirty_note",
    "opening_lines",
    "progress_line",
    "rates_words",
    "render_markdown",
    "submodule_warning",
]


def _series(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values) if values else "-"


LINE_WIDTH = 100
"""No progress line is wider: the subject gives way first, then the metrics wrap."""


def progress_line(record: StepRecord) -> str:
    """One line per oracle call: the commit, the verdict, the term and key metrics (the
    metrics on a second line when one would be wider than :data:`LINE_WIDTH`)."""
    m = record.metrics
    verdict = f"{record.verdict} -> {record.term}"
    if record.verdict in ("untestable", "error"):
        verdict += ":"
        rest = f"{record.detail or 'no detail'}  ({record.step_s:.1f} s)"
    else:
        disagree = f"  disagree {record.disagree}/{record.runs}" if record.runs > 1 else ""
        rest = (
            f"errors {_series(m.errors)} retries {_series(m.retries)} "
            f"CLOSE_WAIT growth {_series(m.close_wait_growth)}{disagree}  ({record.step_s:.1f} s)"
        )
    return _fit(f"{record.label:<10} {record.short}  ", record.subject, verdict, rest)


def _fit(lead: str, subject: str, verdict: str, rest: str) -> str:
    """One line if it fits with the subject cut to 12 or more, else the rest below."""
    room = min(40, max(12, LINE_WIDTH - len(lead) - len(verdict) - len(rest) - 4))
    line = f"{lead}{_clip(subject, room):<{room}}  {verdict}  {rest}"
    if len(line) <= LINE_WIDTH:
        return line
    first = f"{lead}{_clip(subject, 40)}  {verdict}"
    indent = " " * 11
    return (
        first
        + "\n"
        + textwrap.fill(
            rest,
            LINE_WIDTH,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def bound_message(option: str, records: Sequence[StepRecord], want: str) -> str:
    """Why a bound is wrong, in one line: what the oracle measured over its runs there."""
    last = records[-1]
    if last.verdict in ("untestable", "error"):
        measured = f"{last.verdict} (check exit {last.oracle_exit}): {last.detail}"
        return f"{option} {last.short} should be {want} but the oracle found it {measured}"
    m = [r.metrics for r in records]
    shown = sum(sum(r.observed) for r in records)
    runs = sum(r.runs for r in records)
    found = "a regression" if want == "healthy" else "it healthy"
    reasons = list(dict.fromkeys(reason for x in m for reason in x.reasons))
    measured = (
        f"{found} ({shown}/{runs} runs unhealthy; errors "
        f"{_series([e for x in m for e in x.errors])}, retries "
        f"{_series([e for x in m for e in x.retries])}, CLOSE_WAIT growth "
        f"{_series([e for x in m for e in x.close_wait_growth])}"
        + (f"; {'; '.join(reasons)}" if reasons else "")
        + ")"
    )
    return f"{option} {last.short} should be {want} but the oracle found {measured}"


def dirty_note(repo: Path, dirty: int) -> str:
    """The note for a repository with ``dirty`` tracked files changed but not committed."""
    many = dirty > 1
    return (
        f"note: {dirty} tracked file{'s' if many else ''} in {repo} "
        f"{'have' if many else 'has'} uncommitted changes; only committed "
        "history is tested (commit them to test them)"
    )


def opening_lines(
    req: BisectRequest, old_sha: str, new_sha: str, candidates: int, max_runs: int, run_dir: Path
) -> str:
    """What is bisected, how far it may go, and where the report goes."""
    n = candidates
    return (
        f"bisecting {n} commit{'s' if n > 1 else ''}: {req.old_option} {old_sha[:12]} .. "
        f"{req.new_option} {new_sha[:12]} (confidence {req.confidence}, at most "
        f"{max_runs} runs)\nreport: {run_dir}"
    )


def submodule_warning(name: str, url: str, cause: str, sha: str) -> str:
    return (
        f"warning: submodule {name!r} ({url}) could not be fetched; testing {sha[:12]} "
        f"without it: {cause}"
    )


def aborted_message(last: StepRecord) -> str:
    return f"an oracle call failed, stopping the search: {last.short} {last.detail}"


def conclusion_message(
    status: Status,
    req: BisectRequest,
    commits: Sequence[Commit],
    *,
    confidence: float,
    runs: int,
    calls: int,
    seen: Observed,
    show: float,
    alarm: float,
) -> str:
    """The one-line answer for a search that reached a decision (found, skipped, uncertain)."""
    costs = f"after {runs} runs ({calls} oracle calls)"
    first, new = commits[0], req.terms.new
    if status is Status.FOUND:
        return (
            f"first {new} commit: {first.sha} {first.subject!r} by {first.author} "
            f"on {first.date}; confidence {confidence:.3f} {costs}; "
            f"{rates_words(seen, show, alarm)}"
        )
    if status is Status.SKIPPED:
        shown = ", ".join(f"{c.short} {c.subject!r}" for c in commits)
        return (
            f"no single first {new} commit: only untestable (skipped) "
            f"commits are left; it is one of {shown}"
        )
    return (
        f"no commit reached confidence {req.confidence} {costs}: the likeliest first "
        f"{new} commit is {first.short} {first.subject!r} ({confidence:.3f}); "
        "raise --max-runs or --repeat"
    )


def rates_words(seen: Observed, show: float, alarm: float) -> str:
    """How often the regression showed: the counted runs first, then the model's estimates,
    labelled as such (after 4 of 4 runs, "96%" is an estimate, not an observation)."""
    words = (
        f"observed: the regression showed in {seen.buggy_shown} of {seen.buggy_runs} runs on "
        f"commits that have it and in {seen.clean_shown} of {seen.clean_runs} on commits "
        f"that do not; estimated (model): it shows in {show:.0%} of runs on a commit that "
        "has it"
    )
    return words + (f" and in {alarm:.0%} on one that does not" if alarm >= 0.01 else "")


def render_markdown(report: BisectReport) -> str:
    """``bisect.md``: the result, its confidence, the bounds, every call and the costs."""
    data = report.to_dict()
    lines = [f"# Bisect {data['id']}", ""]
    lines += [*(f"> {w}" for w in data["warnings"]), ""] if data["warnings"] else []
    lines += [f"**{data['message']}**", ""]
    lines += [*_setup(data), "", *_runs_per_commit(data), "", *_table(data), ""]
    skipped = data["skipped"]
    if skipped:
        lines += ["## Skipped (untestable) commits", ""]
        lines += [f"- `{s['short']}` {s['subject']}: {s['detail']}" for s in skipped] + [""]
    lines += _costs(data)
    return "\n".join(lines) + "\n"


def _setup(data: Mapping[str, Any]) -> list[str]:
    old, new = data["bounds"]["old"], data["bounds"]["new"]
    flake = data["flake"]
    extras = [f"install: `{data['install']}`"] if data["install"] else []
    extras += ["install at every commit"] if data.get("install_always") else []
    extras += [f"submodules: {data['submodules']}"]
    extras += [f"env: `{k}={v}`" for k, v in data["env"].items()]
    extras += ["first parent only"] if data["first_parent"] else []
    return [
        f"- search: {data['search']} (`{old['option']} {old['ref']}` = `{old['sha'][:12]}`,"
        f" `{new['option']} {new['ref']}` = `{new['sha'][:12]}`), "
        f"{data['candidates']} candidate commits",
        f"- repository: `{data['repo']}`",
        f"- scenario: `{data['scenario']}`; factory: `{data['factory']}`",
        f"- repeat {data['repeat']}, policy {data['policy']}" + "".join(f"; {e}" for e in extras),
        f"- status: {data['status']} (exit {data['exit_code']}); confidence "
        f"{data['confidence']:.3f} (target {data['confidence_target']}, at most "
        f"{data['max_runs']} runs)",
        *_flake(flake),
        *(
            f"- submodule `{u['name']}` ({u['url']}) could not be fetched; tested without "
            f"it: {u['cause']}"
            for u in data["unfetched_submodules"]
        ),
    ]


def _flake(flake: Mapping[str, Any]) -> list[str]:
    lines = []
    seen = flake["observed"]
    if seen is not None:
        lines.append(
            f"- observed: the regression showed in {seen['buggy_shown']} of "
            f"{seen['buggy_runs']} runs on commits that have it (by this answer) and in "
            f"{seen['clean_shown']} of {seen['clean_runs']} on commits that do not"
        )
    if flake["show_rate"] is not None:
        lines.append(
            f"- estimated by the model, not observed: the regression shows in "
            f"{flake['show_rate']:.0%} of runs on a commit that has it, and in "
            f"{flake['false_alarm_rate']:.0%} on one that does not"
        )
    return lines


def _runs_per_commit(data: Mapping[str, Any]) -> list[str]:
    rows = ["## Runs per commit", "", "| commit | calls | runs | unhealthy |", "|---|---|---|---|"]
    for row in data["runs_per_commit"]:
        rows.append(f"| `{row['short']}` | {row['calls']} | {row['runs']} | {row['unhealthy']} |")
    return rows


def _table(data: Mapping[str, Any]) -> list[str]:
    rows = [
        "| # | step | commit | subject | verdict | term | errors | retries "
        "| CLOSE_WAIT growth | disagree | install | openai / httpx / httpx2 | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in data["steps"]:
        m, pkgs = rec["metrics"], rec.get("packages") or {}
        versions = " / ".join(pkgs.get(k, "?") for k in ("openai", "httpx", "httpx2"))
        rows.append(
            f"| {rec['index']} | {rec['label']} | `{rec['short']}` | {_cell(rec['subject'])} "
            f"| {rec['verdict']} | {rec['term']} | {_series(m['errors'])} "
            f"| {_series(m['retries'])} | {_series(m['close_wait_growth'])} "
            f"| {rec['disagree']}/{rec['runs']} | {rec.get('install') or '-'} "
            f"| {versions if pkgs else '-'} | {rec['step_s']:.2f} |"
        )
    return ["## Oracle calls", "", *rows]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _costs(data: Mapping[str, Any]) -> list[str]:
    oracle, t = data["oracle"], data["timings"]
    return [
        "## Cost",
        "",
        f"- oracle calls: {oracle['calls']} ({oracle['calls'] - oracle['bisect_calls']} on "
        f"the bounds, {oracle['bisect_calls']} in the search; {oracle['runs']} runs); "
        f"ceil(log2({data['candidates']})) = {data['expected_steps']}",
        *(
            [
                f"- install: {sum(r['install_s'] for r in data['steps']):.1f} s over "
                f"{sum(r.get('install') in ('ran', 'failed') for r in data['steps'])} of "
                f"{len(data['steps'])} calls (the others found the dependency files "
                f"unchanged); private virtualenv built in {t['venv_s']:.1f} s"
            ]
            if "venv_s" in t
            else []
        ),
        f"- wall time: {t['wall_s']:.1f} s (clone {t['clone_s']:.2f} s, bounds "
        f"{t['bounds_s']:.1f} s, search {t['bisect_s']:.1f} s)",
        f"- scenario runs' own time: {t['scenario_s']:.1f} s; overhead per search call "
        f"beyond it: mean {t['overhead_mean_s']:.2f} s, max {t['overhead_max_s']:.2f} s",
    ]
