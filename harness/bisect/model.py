"""The bisect's values: terms, commits, one oracle call's record, and the whole report.

Everything here is a frozen value with ``to_dict``/``from_dict``; nothing does I/O. The
report (:class:`BisectReport`) is what ``bisect.json`` holds and what ``bisect.md`` is
rendered from; derived figures (oracle calls, runs per commit, overheads) are computed by
``to_dict`` and ignored by ``from_dict``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from harness.redact import redact_pairs

__all__ = [
    "DEFAULT_CONFIDENCE",
    "FIX_TERMS",
    "REGRESSION_TERMS",
    "BisectReport",
    "BisectRequest",
    "Bound",
    "CheckMetrics",
    "Commit",
    "Observed",
    "Outcome",
    "Role",
    "Status",
    "StepRecord",
    "Terms",
    "Word",
    "expected_steps",
    "overheads",
    "runs_per_commit",
]

Word = Literal["healthy", "regression", "untestable", "error"]
DEFAULT_CONFIDENCE = 0.95


class Status(StrEnum):
    """How a bisect ended (bisect.json ``status``); str-valued, so JSON holds the text."""

    FOUND = "found"
    SKIPPED = "skipped"  # only untestable commits separate the likeliest ones
    UNCERTAIN = "uncertain"
    ABORTED = "aborted"
    BAD_BOUNDS = "bad-bounds"
    INTERRUPTED = "interrupted"
    ERROR = "error"
    GIT_ERROR = "git-error"


class Role(StrEnum):
    """What an oracle call was for: calibrating a bound, or a step of the search."""

    BOUND = "bound"
    STEP = "step"


@dataclass(frozen=True)
class Terms:
    """The two ``git bisect`` terms: ``old`` for the earlier state, ``new`` for the later."""

    old: str
    new: str

    @property
    def search(self) -> Literal["regression", "fix"]:
        return "fix" if self.new == "fixed" else "regression"

    @property
    def buggy_is_new(self) -> bool:
        """True when the later state is the one with the bug (a regression hunt)."""
        return self.search == "regression"


REGRESSION_TERMS = Terms(old="good", new="bad")
FIX_TERMS = Terms(old="broken", new="fixed")


@dataclass(frozen=True)
class BisectRequest:
    """One bisect, as given on the command line (refs not yet resolved)."""

    repo: Path
    old_ref: str  # --good or --broken
    new_ref: str  # --bad or --fixed
    terms: Terms
    scenario: Path
    factory: str
    oracle: tuple[str, ...]
    repeat: int = 1
    policy: str = "majority"
    install: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # --env KEY=VALUE, in order
    first_parent: bool = False
    confidence: float = DEFAULT_CONFIDENCE
    max_runs: int | None = None  # None: a budget from the number of candidates
    report_dir: Path = Path("reports")
    submodules: str = "auto"  # auto | require | skip (--submodules)
    install_always: bool = False  # run --install at every commit, not only on changed deps

    @property
    def old_option(self) -> str:
        return f"--{self.terms.old}"

    @property
    def new_option(self) -> str:
        return f"--{self.terms.new}"


@dataclass(frozen=True)
class Commit:
    """What the report says about one commit."""

    sha: str
    short: str
    subject: str
    author: str
    date: str  # ISO 8601, author date

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Commit:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class CheckMetrics:
    """What one oracle call measured, per run, read from its ``--json`` file."""

    statuses: tuple[str, ...] = ()
    healthy: tuple[bool, ...] = ()
    errors: tuple[int, ...] = ()
    retries: tuple[int, ...] = ()
    close_wait_growth: tuple[int, ...] = ()
    scenario_s: float = 0.0  # the runs' own wall time, summed
    reasons: tuple[str, ...] = ()  # distinct, in order of first appearance

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckMetrics:
        return cls(
            statuses=tuple(data["statuses"]),
            healthy=tuple(data["healthy"]),
            errors=tuple(data["errors"]),
            retries=tuple(data["retries"]),
            close_wait_growth=tuple(data["close_wait_growth"]),
            scenario_s=data["scenario_s"],
            reasons=tuple(data["reasons"]),
        )


@dataclass(frozen=True)
class StepRecord:
    """One oracle call at one commit: its verdict, the term it reads as, and every run's
    reading (``observed``: True where the regression showed) that the search counted."""

    index: int
    role: Role
    sha: str
    short: str
    subject: str
    oracle_exit: int  # negative: killed by that signal
    verdict: Word
    term: str  # terms.old, terms.new, "skip" or "abort"
    bisect_exit: int  # the exit code `git bisect run` would read as `term`
    disagree: int  # testable runs whose health differs from the verdict
    observed: tuple[bool, ...]
    metrics: CheckMetrics
    install_s: float
    oracle_s: float
    step_s: float
    started: float  # epoch seconds
    finished: float
    detail: str = ""  # why untestable or aborted: the oracle's or installer's last line
    files: Mapping[str, str] = field(default_factory=dict)  # role -> path relative to run dir
    # Defaults: step records written before these fields existed still load.
    install: str = ""  # "ran", "failed", "skipped" (dependency files unchanged); "": no --install
    packages: Mapping[str, str] = field(default_factory=dict)  # openai/httpx/httpx2 the runs used
    bound_term: str = ""  # a bound's term (terms.old or terms.new); "" for a step

    @property
    def runs(self) -> int:
        return len(self.observed)

    @property
    def is_bound(self) -> bool:
        return self.role is Role.BOUND

    @property
    def label(self) -> str:
        """The role as bisect.json and the progress lines show it: "good bound", "step"."""
        return f"{self.bound_term} {Role.BOUND}" if self.is_bound else str(Role.STEP)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["role"], data["bound_term"]
        data = {"index": data.pop("index"), "label": self.label, **data}  # bisect.json's order
        data["files"] = dict(self.files)
        data["packages"] = dict(self.packages)
        data["observed"] = list(self.observed)
        data["runs"] = self.runs
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        skip = ("role", "bound_term")
        values = {
            f.name: data[f.name] for f in fields(cls) if f.name in data and f.name not in skip
        }
        term, _, role = str(data["label"]).rpartition(" ")
        values["role"] = Role(role)
        values["bound_term"] = term
        values["metrics"] = CheckMetrics.from_dict(data["metrics"])
        values["observed"] = tuple(data["observed"])
        values["files"] = dict(data.get("files", {}))
        values["packages"] = dict(data.get("packages", {}))
        return cls(**values)


@dataclass(frozen=True)
class Bound:
    """A bound as given (``--good v1``) and resolved."""

    option: str
    ref: str
    sha: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """How the bisect ended, and what the search believed at the end."""

    status: Status
    exit_code: int
    message: str
    result: Commit | None = None
    possible: tuple[Commit, ...] = ()  # ambiguous: only untestable commits separate these
    confidence: float = 0.0  # posterior mass of the result (or of ``possible`` together)
    # estimated P(regression shows | commit has the bug), P(... | clean); None: no search ran
    show_rate: float | None = None
    false_alarm_rate: float | None = None
    # what the runs showed, read by the answer (or the likeliest commit); None: no answer
    observed: Observed | None = None


@dataclass(frozen=True)
class Observed:
    """Runs counted on each side of an answer: on commits that have the regression by that
    answer (``buggy_*``) and on those that do not (``clean_*``). Counts, not estimates."""

    buggy_shown: int
    buggy_runs: int
    clean_shown: int
    clean_runs: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


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
