"""``bisect.json``: the whole report (:class:`BisectReport`) and the figures derived from
its oracle calls.

``to_dict`` writes every derived figure (oracle calls, runs per commit, overheads);
``from_dict`` reads what was given and ignores those, and fields added since schema 2 have
defaults, so older files still load. Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bisect.model import (
    BisectRequest,
    Bound,
    Commit,
    Observed,
    Outcome,
    Status,
    StepRecord,
    Terms,
)
from harness.redact import redact_pairs

__all__ = ["BisectReport", "expected_steps", "overheads", "runs_per_commit"]


@dataclass(frozen=True)
class BisectReport:
    """``bisect.json``: what was asked (refs resolved in ``old``/``new``, ``max_runs`` the
    budget in force), how it ended, every oracle call, the timings."""

    id: str
    started: str
    request: BisectRequest
    old: Bound
    new: Bound
    candidates: int
    outcome: Outcome
    steps: tuple[StepRecord, ...]
    timings: Mapping[str, float]  # clone_s, bounds_s, bisect_s, wall_s (venv_s with --install)
    # Defaults: files written before these fields existed still load.
    warnings: tuple[str, ...] = ()  # each printed as one line: uncommitted changes, submodules
    unfetched_submodules: tuple[Mapping[str, str], ...] = ()  # name, path, url, cause

    def to_dict(self) -> dict[str, Any]:
        req, out = self.request, self.outcome
        searched = [r for r in self.steps if not r.is_bound]
        costs = overheads(self.steps)[-len(searched) :] if searched else []
        bound_records = {r.bound_term: r for r in self.steps if r.is_bound}
        return {
            "schema": 2,
            "command": "bisect",
            "id": self.id,
            "started": self.started,
            "search": req.terms.search,
            "terms": {"old": req.terms.old, "new": req.terms.new},
            "repo": str(req.repo),
            "scenario": str(req.scenario),
            "factory": req.factory,
            "repeat": req.repeat,
            "policy": req.policy,
            "install": req.install,
            "env": dict(redact_pairs(req.env)),  # never a secret: harness.redact
            "install_always": req.install_always,
            "submodules": req.submodules,
            "warnings": list(self.warnings),
            "unfetched_submodules": [dict(u) for u in self.unfetched_submodules],
            "first_parent": req.first_parent,
            "confidence_target": req.confidence,
            "max_runs": req.max_runs,
            "report_dir": str(req.report_dir),
            "status": str(out.status),
            "exit_code": out.exit_code,
            "message": out.message,
            "result": out.result.to_dict() if out.result else None,
            "possible": [c.to_dict() for c in out.possible],
            "confidence": round(out.confidence, 4),
            "flake": {
                "observed": out.observed.to_dict() if out.observed else None,
                "show_rate": _round(out.show_rate),
                "false_alarm_rate": _round(out.false_alarm_rate),
            },
            "oracle": {
                "command": list(req.oracle),
                "calls": len(self.steps),
                "bisect_calls": len(searched),
                "runs": sum(r.runs for r in self.steps),
            },
            "bounds": {
                side: {**bound.to_dict(), "record": _last(bound_records, term)}
                for side, bound, term in (
                    ("old", self.old, req.terms.old),
                    ("new", self.new, req.terms.new),
                )
            },
            "candidates": self.candidates,
            "expected_steps": expected_steps(self.candidates),
            "runs_per_commit": runs_per_commit(self.steps),
            "skipped": [
                {"sha": r.sha, "short": r.short, "subject": r.subject, "detail": r.detail}
                for r in searched
                if r.term == "skip"
            ],
            "steps": [r.to_dict() for r in self.steps],
            "timings": {
                **self.timings,
                "scenario_s": round(sum(r.metrics.scenario_s for r in self.steps), 3),
                "overhead_per_step_s": costs,
                "overhead_mean_s": round(sum(costs) / len(costs), 3) if costs else 0.0,
                "overhead_max_s": max(costs, default=0.0),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BisectReport:
        terms = Terms(**data["terms"])
        bounds = data["bounds"]
        request = BisectRequest(
            repo=Path(data["repo"]),
            old_ref=bounds["old"]["ref"],
            new_ref=bounds["new"]["ref"],
            terms=terms,
            scenario=Path(data["scenario"]),
            factory=data["factory"],
            oracle=tuple(data["oracle"]["command"]),
            repeat=data["repeat"],
            policy=data["policy"],
            install=data["install"],
            env=tuple(data["env"].items()),
            first_parent=data["first_parent"],
            confidence=data["confidence_target"],
            max_runs=data["max_runs"],
            report_dir=Path(data["report_dir"]),
            submodules=data.get("submodules", "auto"),
            install_always=data.get("install_always", False),
        )
        outcome = Outcome(
            status=Status(data["status"]),
            exit_code=data["exit_code"],
            message=data["message"],
            result=Commit.from_dict(data["result"]) if data["result"] else None,
            possible=tuple(Commit.from_dict(c) for c in data["possible"]),
            confidence=data["confidence"],
            show_rate=data["flake"]["show_rate"],
            false_alarm_rate=data["flake"]["false_alarm_rate"],
            observed=Observed(**seen) if (seen := data["flake"].get("observed")) else None,
        )
        timing_keys = ("clone_s", "bounds_s", "bisect_s", "wall_s")
        timings = {k: data["timings"][k] for k in timing_keys}
        if "venv_s" in data["timings"]:  # only with --install
            timings["venv_s"] = data["timings"]["venv_s"]
        return cls(
            id=data["id"],
            started=data["started"],
            request=request,
            old=_bound(bounds["old"]),
            new=_bound(bounds["new"]),
            candidates=data["candidates"],
            outcome=outcome,
            steps=tuple(StepRecord.from_dict(s) for s in data["steps"]),
            timings=timings,
            warnings=tuple(data.get("warnings", ())),
            unfetched_submodules=tuple(dict(u) for u in data.get("unfetched_submodules", ())),
        )


def expected_steps(candidates: int) -> int:
    """``ceil(log2(candidates))``: the oracle calls a deterministic bisect needs without skips."""
    return math.ceil(math.log2(candidates)) if candidates > 1 else 0


def overheads(records: Sequence[StepRecord]) -> list[float]:
    """Seconds each call cost beyond its scenario runs' own wall time: checkout and
    bookkeeping since the previous call ended, process starts, the oracle's setup."""
    out: list[float] = []
    for prev, rec in itertools.pairwise(records):
        gap = max(0.0, rec.started - prev.finished)
        out.append(round(gap + rec.step_s - rec.metrics.scenario_s, 3))
    return out


def runs_per_commit(records: Sequence[StepRecord]) -> list[dict[str, Any]]:
    """Per tested commit, in order of first test: runs counted and how many showed it."""
    table: dict[str, dict[str, Any]] = {}
    for r in records:
        row = table.setdefault(
            r.sha, {"sha": r.sha, "short": r.short, "calls": 0, "runs": 0, "unhealthy": 0}
        )
        row["calls"] += 1
        row["runs"] += r.runs
        row["unhealthy"] += sum(r.observed)
    return list(table.values())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _bound(data: Mapping[str, Any]) -> Bound:
    return Bound(option=data["option"], ref=data["ref"], sha=data["sha"])


def _last(records: Mapping[str, StepRecord], term: str) -> dict[str, Any] | None:
    record = records.get(term)
    return record.to_dict() if record else None
