"""One bisect step: test the commit checked out in the private clone with ``harness check``.

``git bisect run`` calls ``python -P -m harness.bisect_step CONFIG.json`` at every commit; the
driver calls :func:`run_step` itself for the two bounds. A step runs the optional install
command, then the oracle with ``--json`` into the run's ``steps/`` folder (outside the
checkout: git bisect needs a clean tree), scrubs the checkout, writes its
:class:`StepRecord` atomically, prints one progress line prefixed with :data:`MARKER` (the
driver shows those and logs the rest of git's chatter), and exits with the code
``git bisect run`` expects for the step's term:

=============  =====================  ======================  =====
oracle         --good/--bad search    --broken/--fixed search  exit
=============  =====================  ======================  =====
0 healthy      good (old)             fixed (new)             0 / 1
1 regression   bad (new)              broken (old)            1 / 0
125 untestable skip                   skip                    125
anything else  abort the bisect       abort the bisect        255
=============  =====================  ======================  =====

An untestable commit (factory not importable, install failed) is skipped, never called bad.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from harness.bisect_git import Terms, commit_info, git, scrub
from harness.environment import harness_env
from harness.report.layout import atomic_write_text

__all__ = [
    "MARKER",
    "StepConfig",
    "StepRecord",
    "bisect_exit",
    "kill_tree",
    "read_check",
    "run_step",
    "term_of",
]

MARKER = "harness-bisect-step: "
ABORT = 255  # >= 128: git bisect run stops
Word = Literal["healthy", "regression", "untestable", "error"]
_WORDS: Mapping[int, Word] = {0: "healthy", 1: "regression", 125: "untestable"}


@dataclass(frozen=True)
class StepConfig:
    """What every step needs; the driver writes it once as JSON for the step processes."""

    oracle: tuple[str, ...]  # argv prefix, e.g. (python, "-P", "-m", "harness", "check")
    scenario: str  # absolute path
    factory: str
    repeat: int
    policy: str
    install: str | None  # shell command run in the checkout before testing, or none
    checkout: str  # the private clone
    steps_dir: str  # outside the checkout
    terms: Terms

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "oracle": list(self.oracle)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> StepConfig:
        data = json.loads(text)
        return cls(**{**data, "oracle": tuple(data["oracle"]), "terms": Terms(**data["terms"])})


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


@dataclass(frozen=True)
class StepRecord:
    """One tested commit: the oracle's verdict, the bisect term it became, and metrics."""

    index: int
    label: str  # "good bound", "bad bound", "step", ...
    sha: str
    short: str
    subject: str
    oracle_exit: int  # negative: killed by that signal
    verdict: Word
    term: str  # terms.old, terms.new, "skip" or "abort"
    bisect_exit: int
    disagree: int  # testable runs whose health differs from the verdict
    metrics: CheckMetrics
    install_s: float
    oracle_s: float
    step_s: float
    started: float  # epoch seconds
    finished: float
    detail: str = ""  # why untestable or aborted: the oracle's or installer's last line
    files: Mapping[str, str] = field(default_factory=dict)  # role -> path relative to run dir

    @property
    def runs(self) -> int:
        return len(self.metrics.statuses)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = dict(self.files)
        data["runs"] = len(self.metrics.statuses)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        fields = {k: v for k, v in data.items() if k != "runs"}
        m = data["metrics"]
        fields["metrics"] = CheckMetrics(
            statuses=tuple(m["statuses"]),
            healthy=tuple(m["healthy"]),
            errors=tuple(m["errors"]),
            retries=tuple(m["retries"]),
            close_wait_growth=tuple(m["close_wait_growth"]),
            scenario_s=m["scenario_s"],
            reasons=tuple(m["reasons"]),
        )
        fields["files"] = dict(data.get("files", {}))
        return cls(**fields)


# --- pure decisions -------------------------------------------------------------------------


def word_of(oracle_exit: int) -> Word:
    return _WORDS.get(oracle_exit, "error")


def term_of(word: Word, terms: Terms) -> str:
    """The bisect term for an oracle verdict: healthy is the old term when hunting a
    regression and the new one when hunting a fix."""
    if word == "untestable":
        return "skip"
    if word == "error":
        return "abort"
    healthy_term = terms.old if terms.search == "regression" else terms.new
    unhealthy_term = terms.new if terms.search == "regression" else terms.old
    return healthy_term if word == "healthy" else unhealthy_term


def bisect_exit(term: str, terms: Terms) -> int:
    """The exit code ``git bisect run`` reads as ``term``."""
    return {terms.old: 0, terms.new: 1, "skip": 125}.get(term, ABORT)


def read_check(data: Mapping[str, Any]) -> CheckMetrics:
    """Per-run metrics from a ``harness check --json`` document (a RegressSummary)."""
    entries = data.get("entries") or []
    if not entries:
        return CheckMetrics()
    runs, verdicts = entries[0]["runs"], entries[0]["verdicts"]
    reasons: list[str] = []
    for verdict in verdicts:
        reasons += [r for r in verdict["reasons"] if r not in reasons]
    return CheckMetrics(
        statuses=tuple(r["status"] for r in runs),
        healthy=tuple(bool(v["healthy"]) for v in verdicts),
        errors=tuple(int(r["errors"]) for r in runs),
        retries=tuple(int(r["retries"]) for r in runs),
        close_wait_growth=tuple(int(r["close_wait_growth"]) for r in runs),
        scenario_s=round(sum(float(r["wall_s"]) for r in runs), 3),
        reasons=tuple(reasons),
    )


def disagreeing(metrics: CheckMetrics, word: Word) -> int:
    """Testable runs that voted against the step's verdict (a measure of flakiness)."""
    if word not in ("healthy", "regression"):
        return 0
    votes = [h for s, h in zip(metrics.statuses, metrics.healthy, strict=True) if s != "untestable"]
    return sum(1 for h in votes if h != (word == "healthy"))


# --- processes --------------------------------------------------------------------------------


def kill_tree(pid: int, *, grace_s: float = 3.0) -> None:
    """Terminate ``pid`` and every descendant (also ones in other sessions, like a check
    worker), then kill what is left after ``grace_s``."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace_s)


def run_logged(argv: Sequence[str] | str, *, cwd: Path, env: Mapping[str, str], log: Path) -> int:
    """Run a child with its output in ``log``; on any interruption kill its whole tree."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # argv: the oracle; a str: the user's --install command
            argv,
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            shell=isinstance(argv, str),
        )
        try:
            return proc.wait()
        except BaseException:
            kill_tree(proc.pid)
            proc.wait()
            raise


def last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text("utf-8", errors="replace").splitlines()]
    return next((ln for ln in reversed(lines) if ln), "")


# --- one step -----------------------------------------------------------------------------


def _next_index(steps_dir: Path) -> int:
    return len(list(steps_dir.glob("*.step.json"))) + 1


def child_env() -> dict[str, str]:
    """The oracle's environment: no bytecode files written into the checkout."""
    return harness_env({**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def run_step(config: StepConfig, label: str) -> StepRecord:
    """Test the commit checked out in ``config.checkout``; write and return its record."""
    started, t0 = time.time(), time.monotonic()
    checkout, steps = Path(config.checkout), Path(config.steps_dir)
    sha = git(["rev-parse", "HEAD"], cwd=checkout, what="read the commit under test").strip()
    commit = commit_info(checkout, sha)
    index = _next_index(steps)
    stem = f"{index:03d}-{commit.short}"
    files: dict[str, str] = {}
    install_s, oracle_exit, detail = 0.0, 125, ""
    try:
        if config.install:
            files["install_log"] = f"steps/{stem}.install.log"
            code = run_logged(
                config.install, cwd=checkout, env=child_env(), log=steps / f"{stem}.install.log"
            )
            install_s = time.monotonic() - t0
            if code != 0:
                why = last_line(steps / f"{stem}.install.log")
                detail = f"install command exited {code}" + (f": {why}" if why else "")
        if not detail:
            oracle_exit, metrics, detail = _oracle(config, steps, stem, files)
        else:
            metrics = CheckMetrics()
    finally:
        scrub(checkout)  # also on failure: the next checkout must find a clean tree
    word = word_of(oracle_exit)
    term = term_of(word, config.terms)
    record = StepRecord(
        index=index,
        label=label,
        sha=sha,
        short=commit.short,
        subject=commit.subject,
        oracle_exit=oracle_exit,
        verdict=word,
        term=term,
        bisect_exit=bisect_exit(term, config.terms),
        disagree=disagreeing(metrics, word),
        metrics=metrics,
        install_s=round(install_s, 3),
        oracle_s=round(time.monotonic() - t0 - install_s, 3),
        step_s=round(time.monotonic() - t0, 3),
        started=started,
        finished=time.time(),
        detail=detail,
        files=files,
    )
    atomic_write_text(steps / f"{stem}.step.json", json.dumps(record.to_dict(), indent=2) + "\n")
    return record


def _oracle(
    config: StepConfig, steps: Path, stem: str, files: dict[str, str]
) -> tuple[int, CheckMetrics, str]:
    json_path, log_path = steps / f"{stem}.check.json", steps / f"{stem}.check.log"
    files["check_json"], files["check_log"] = f"steps/{json_path.name}", f"steps/{log_path.name}"
    argv = [
        *config.oracle,
        "--scenario",
        config.scenario,
        "--factory",
        config.factory,
        "--root",
        config.checkout,
        "--repeat",
        str(config.repeat),
        "--policy",
        config.policy,
        "--json",
        str(json_path),
    ]
    # cwd outside the checkout: nothing the oracle writes by accident lands in the tree
    code = run_logged(argv, cwd=steps, env=child_env(), log=log_path)
    metrics = CheckMetrics()
    if json_path.is_file():
        metrics = read_check(json.loads(json_path.read_text("utf-8")))
    # the verdict's reasons say why (e.g. the import error); else the oracle's last words
    detail = "" if code in (0, 1) else "; ".join(metrics.reasons) or last_line(log_path)
    return code, metrics, detail


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``git bisect run``; returns the exit code git reads as a term."""
    from harness.bisect_report import progress_line

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        config = StepConfig.from_json(Path(args[0]).read_text("utf-8"))
        record = run_step(config, "step")
    except Exception as exc:  # any failure here must stop the bisect, never mark a commit
        print(f"{MARKER}step failed, aborting the bisect: {exc}", flush=True)
        return ABORT
    print(MARKER + progress_line(record), flush=True)
    return record.bisect_exit


if __name__ == "__main__":
    raise SystemExit(main())
