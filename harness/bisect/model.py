"""The bisect's values: terms, the request, commits, one oracle call's record, the outcome.

Everything here is a frozen value (the str-valued enums :class:`Status` and :class:`Role`
serialize as their text); nothing does I/O. The whole report, ``bisect.json``, is
:class:`harness.bisect.report.BisectReport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_CONFIDENCE",
    "FIX_TERMS",
    "REGRESSION_TERMS",
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
    def disagree(self) -> int:
        """Testable runs whose health differs from the verdict (a measure of flakiness)."""
        return sum(1 for shown in self.observed if shown != (self.verdict == "regression"))

    @property
    def is_bound(self) -> bool:
        return self.role is Role.BOUND

    @property
    def label(self) -> str:
        """The role as bisect.json and the progress lines show it: "good bound", "step"."""
        return f"{self.bound_term} {Role.BOUND}" if self.is_bound else str(Role.STEP)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["role"], values["bound_term"]
        data: dict[str, Any] = {"index": values.pop("index"), "label": self.label}  # its order
        for key, value in values.items():
            if key == "observed":  # the derived count stands where bisect.json always had it
                data["disagree"] = self.disagree
            data[key] = value
        data["files"] = dict(self.files)
        data["packages"] = dict(self.packages)
        data["observed"] = list(self.observed)
        data["runs"] = self.runs
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        skip = ("role", "bound_term")  # read from label; runs and disagree are derived
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
