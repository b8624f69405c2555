"""Verdicts: a scenario's expectations applied to a :class:`RunResult`.

``healthy`` says whether the run stayed within every threshold of ``expect:``; ``outcome``
is ``"pass"`` (healthy) or ``"fail"``; ``as_expected`` compares that with the variant's role
in the scenario (``pass``: must be healthy, ``fail``: must be caught, ``observe``: anything).
A run that did not complete (hung, crashed, untestable), or whose mock server failed, is never
healthy; nor is one whose factory raised building a request client (the reason names what it
raised), whatever ``expect:`` allows: the gateway could not serve that request in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.result import SERVER_ERROR, RunResult
from harness.schema import Expectations
from harness.shard import Shard

__all__ = ["REASON_KEYS", "RegressEntry", "RegressSummary", "Verdict", "judge", "reason_key"]

Outcome = Literal["pass", "fail"]


@dataclass(frozen=True)
class Verdict:
    """Whether one run was healthy, why not, and whether that was expected."""

    healthy: bool
    reasons: tuple[str, ...]
    expected: Literal["pass", "fail", "observe"]

    @property
    def outcome(self) -> Outcome:
        return "pass" if self.healthy else "fail"

    @property
    def as_expected(self) -> bool:
        return self.expected == "observe" or self.expected == self.outcome

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome, "as_expected": self.as_expected}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            healthy=data["healthy"], reasons=tuple(data["reasons"]), expected=data["expected"]
        )


# expectation field -> the RunResult attribute it bounds
_THRESHOLDS: tuple[tuple[str, str], ...] = (
    ("errors", "errors"),
    ("retries", "retries"),
    ("sdk_retries", "sdk_retries"),
    ("close_wait_peak", "close_wait_peak"),
    ("close_wait_growth", "close_wait_growth"),
    ("close_wait_live_after_gc", "close_wait_live_after_gc"),
    ("close_wait_after_close", "close_wait_after_close"),
    ("close_wait_after_gc", "close_wait_after_gc"),
    ("connections", "connections"),
    ("p95_latency_ms", "latency_p95_ms"),
)


# The key of each kind of reason judge() gives (harness shrink --reason): a threshold's
# `expect:` name, the run's status when it did not complete, or what failed.
REASON_KEYS: tuple[str, ...] = (
    *(name for name, _ in _THRESHOLDS),
    "hung",
    "crashed",
    "untestable",
    "factory_raised",
    "server_failed",
)


def reason_key(reason: str) -> str:
    """The key of one of :func:`judge`'s reasons: ``errors 3 > 0`` -> ``errors``, ``run hung:
    ...`` -> ``hung``, ``the factory raised ...`` -> ``factory_raised``, ``the mock server
    failed ...`` -> ``server_failed``."""
    if reason.startswith("run "):
        return reason[4:].split(":")[0].split()[0]
    if reason.startswith("the factory raised"):
        return "factory_raised"
    if reason.startswith("the mock server failed"):
        return "server_failed"
    return reason.split()[0]


def judge(
    result: RunResult, expect: Expectations, expected: Literal["pass", "fail", "observe"]
) -> Verdict:
    """Apply ``expect`` to ``result``: one reason per threshold exceeded."""
    reasons: list[str] = []
    if result.status != "completed":
        detail = f": {result.detail}" if result.detail else ""
        reasons.append(f"run {result.status}{detail}")
    raised = [r for r in result.records if r.factory_raised]
    if raised:  # what production would see: the gateway cannot build a client for a request
        what = raised[0].error_chain[0] if raised[0].error_chain else raised[0].error_type
        reasons.append(
            f"the factory raised building {len(raised)} of {result.calls} request clients: {what}"
        )
    server_errors = result.server.faults_fired.get(SERVER_ERROR, 0)
    if server_errors:
        reasons.append(f"the mock server failed {server_errors} times (a harness bug; see its log)")
    for name, attr in _THRESHOLDS:
        limit = getattr(expect, name)
        value = getattr(result, attr)
        if limit is not None and value > limit:
            shown = f"{value:.1f}" if isinstance(value, float) else str(value)
            reasons.append(f"{name} {shown} > {limit}")
    return Verdict(healthy=not reasons, reasons=tuple(reasons), expected=expected)


@dataclass(frozen=True)
class RegressEntry:
    """One (scenario, variant) cell of a regress matrix: its repeats and the verdict."""

    scenario: str
    variant: str
    description: str
    runs: tuple[RunResult, ...]
    verdicts: tuple[Verdict, ...]  # one per run
    # The openai SDK line ("3", "2", "1") in a report that combines several lines (compat);
    # "" in a report of one line. Cells are keyed by (scenario, variant, line).
    line: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.variant, self.line)

    @property
    def label(self) -> str:
        """The variant, with its SDK line when the report has several: ``baseline [openai 3]``."""
        return f"{self.variant} [openai {self.line}]" if self.line else self.variant

    @property
    def result(self) -> RunResult:
        """The representative run: the first one whose verdict is not as expected, else the
        first."""
        for run, verdict in zip(self.runs, self.verdicts, strict=True):
            if not verdict.as_expected:
                return run
        return self.runs[0]

    @property
    def verdict(self) -> Verdict:
        return self.verdicts[self.runs.index(self.result)]

    @property
    def as_expected(self) -> bool:
        return all(v.as_expected for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        # "line" only when set, so single-line results.json files stay as they were.
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            **({"line": self.line} if self.line else {}),
            "description": self.description,
            "as_expected": self.as_expected,
            "runs": [r.to_dict() for r in self.runs],
            "verdicts": [v.to_dict() for v in self.verdicts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressEntry:
        scenario, variant = data["scenario"], data["variant"]
        runs, verdicts = data["runs"], data["verdicts"]
        if not runs or len(runs) != len(verdicts):
            raise ValueError(
                f"entry {scenario!r}/{variant!r} needs one verdict per run and at least one "
                f"run; has {len(runs)} runs, {len(verdicts)} verdicts"
            )
        return cls(
            scenario=scenario,
            variant=variant,
            description=data.get("description", ""),
            runs=tuple(RunResult.from_dict(r) for r in runs),
            verdicts=tuple(Verdict.from_dict(v) for v in verdicts),
            line=str(data.get("line", "")),
        )


@dataclass(frozen=True)
class RegressSummary:
    """A whole regress (or run) invocation: what every report writer reads."""

    run_id: str  # sortable by time, e.g. "20261124T141500Z-regress"
    command: str  # "regress" | "run" | "check"
    started: str  # ISO 8601 UTC
    wall_s: float
    entries: tuple[RegressEntry, ...]
    environment: Mapping[str, str]
    interrupted: bool = False
    scenarios: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> to_dict()
    shard: Shard | None = None  # set when the run was one shard of a matrix (--shard I/N)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(e.as_expected for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "run_id": self.run_id,
            "command": self.command,
            "started": self.started,
            "wall_s": self.wall_s,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "environment": dict(self.environment),
            "scenarios": {k: dict(v) for k, v in self.scenarios.items()},
            **({"shard": self.shard.to_dict()} if self.shard else {}),
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressSummary:
        return cls(
            run_id=data["run_id"],
            command=data["command"],
            started=data["started"],
            wall_s=data["wall_s"],
            entries=tuple(RegressEntry.from_dict(e) for e in data["entries"]),
            environment=dict(data["environment"]),
            interrupted=data.get("interrupted", False),
            scenarios=dict(data.get("scenarios", {})),
            shard=Shard.from_dict(data["shard"]) if data.get("shard") else None,
        )

    @property
    def lines(self) -> tuple[str, ...]:
        """The SDK lines this report combines, in entry order; () for a one-line report."""
        return tuple(dict.fromkeys(e.line for e in self.entries if e.line))

    def by_scenario(self) -> dict[str, list[RegressEntry]]:
        """Entries grouped by scenario, in run order."""
        groups: dict[str, list[RegressEntry]] = {}
        for entry in self.entries:
            groups.setdefault(entry.scenario, []).append(entry)
        return groups
