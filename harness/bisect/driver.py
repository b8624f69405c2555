"""The bisect driver: validate, clone, calibrate on the bounds, search, report.

Theory of operation
-------------------
1. Validate without writing anything: the repository, both refs (resolved to shas in the
   user's repository), ancestry, the scenario file (:mod:`harness.bisect.inputs`). Bad input
   raises ``BisectInputError`` or ``ScenarioError``: one line, exit 2, nothing created.
2. Make a private ``git clone --shared --no-checkout`` in a temporary directory
   (:mod:`harness.bisect.git` explains why a clone and not a worktree). All checkouts live
   there; the user's repository is only ever read.
3. Calibrate: run the bounds (:func:`harness.bisect.search.calibration_next`); a bound that
   does not show what it should is bad input (exit 2, naming the bound and what was measured;
   :mod:`harness.bisect.calibration` judges, :mod:`harness.bisect.render` words it).
4. Search (:mod:`harness.bisect.search`): check out the commit the posterior asks for, call
   the oracle (:func:`harness.bisect.step.run_step`), feed every run to the posterior, until it
   names a commit with ``--confidence``, only untestable commits separate the likeliest ones,
   or ``--max-runs`` is spent. An untestable commit is never tested again.
5. Record the conclusion with ``git bisect`` in the clone (every tested commit marked with the
   term the answer gives it, untestable ones skipped), so ``bisect-log.txt`` is a log
   ``git bisect replay`` accepts and git's own verdict confirms ours
   (:mod:`harness.bisect.bisectlog`); write ``bisect.json`` and
   ``bisect.md`` into ``<report-dir>/bisect-<id>/``; remove the clone.

SIGINT and SIGTERM raise :class:`~harness.interrupts.Interrupted` in the main thread; the
running oracle or install command is killed as a tree, the clone is removed, a partial report
is written, and the command exits 128 + the signal number (130 for Ctrl-C). Further signals
are ignored while cleaning up (:mod:`harness.interrupts`, shared with ``regress``).

Before the clone, a repository whose working tree has uncommitted changes to tracked files gets
one line saying that only committed history is tested. With ``--install`` the install command
and the oracle run in a private virtualenv (:mod:`harness.bisect.installenv`), installed only
when a commit's dependency files changed. A submodule git cannot fetch is a warning (named in
the output and the report) under ``--submodules auto``, an error under ``require``.

Exit codes: 0 a commit was named with the asked confidence, 1 no single commit could be named
(only untestable commits separate the candidates, the budget ran out first, or an oracle call
failed), 2 bad input, 3 a git command failed (the line keeps git's own cause), 130/143
interrupted.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from harness.bisect import bisectlog, calibration, installenv
from harness.bisect import git as g
from harness.bisect.inputs import Bounds, make_run_dir, validate
from harness.bisect.model import (
    BisectRequest,
    Observed,
    Outcome,
    Role,
    Status,
    StepRecord,
)
from harness.bisect.render import (
    aborted_message,
    conclusion_message,
    dirty_note,
    opening_lines,
    progress_line,
    render_markdown,
    submodule_warning,
)
from harness.bisect.report import BisectReport
from harness.bisect.search import (
    OLD_BOUND,
    Decision,
    Posterior,
    calibration_next,
    decide,
    default_max_runs,
    observed_counts,
)
from harness.bisect.step import DEFAULT_ORACLE, StepConfig, checker_env, run_step
from harness.bisect.workers import OracleWorkers
from harness.errors import BisectInputError, GitError, HarnessError, UsageError
from harness.interrupts import Interrupted, handling, ignoring
from harness.progress import Progress
from harness.redact import given_values
from harness.report.layout import atomic_write_text

__all__ = ["GIT_FAILED", "Interrupted", "run_bisect", "validate"]

GIT_FAILED = 3  # the exit code when a git command fails (clone, checkout, submodules, log)


def run_bisect(
    req: BisectRequest,
    *,
    out: TextIO,
    progress: Progress | None = None,
    json_to: TextIO | None = None,
) -> int:
    """Run the whole bisect; return the exit code. See the module docstring.

    Progress goes to ``progress`` (default: plain lines on ``out``; the command passes a live
    display on a terminal, see :mod:`harness.progress`). With ``json_to``, bisect.json's text
    is written there at the end, whatever the outcome (``bisect --json``).
    """
    try:
        common, bounds = validate(req)
    except GitError as exc:
        print(f"harness bisect: error: {exc}", file=sys.stderr)
        return GIT_FAILED
    run = _Run(req, bounds, make_run_dir(req.report_dir), progress or Progress(out))
    with handling():
        try:
            return run.execute(common)
        except UsageError:
            raise  # bad bounds: the report is written, the CLI prints the one line
        except GitError as exc:
            with ignoring():
                run.finish(Outcome(status=Status.GIT_ERROR, exit_code=GIT_FAILED, message=str(exc)))
            print(f"harness bisect: error: {exc}", file=sys.stderr)
            return GIT_FAILED
        except HarnessError as exc:
            with ignoring():
                run.finish(Outcome(status=Status.ERROR, exit_code=1, message=str(exc)))
            print(f"harness bisect: error: {exc}", file=sys.stderr)
            return 1
        except Interrupted as exc:
            code = 128 + exc.signum
            with ignoring():
                run.finish(
                    Outcome(
                        status=Status.INTERRUPTED, exit_code=code, message=f"interrupted by {exc}"
                    )
                )
            print("harness bisect: interrupted; the repository is unchanged", file=sys.stderr)
            return code
        finally:
            with ignoring():
                run.remove_clone()
                if json_to is not None:
                    run.print_report(json_to)


_STATUS = {"found": Status.FOUND, "ambiguous": Status.SKIPPED}  # else uncertain


class _Run:
    """The state of one bisect while it runs; ``finish`` writes its report."""

    def __init__(
        self, req: BisectRequest, bounds: Bounds, run_dir: Path, progress: Progress
    ) -> None:
        self.req, self.bounds, self.run_dir, self.progress = req, bounds, run_dir, progress
        self.history = bounds.history
        self.t0, self.started = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
        self.tmp: Path | None = None
        self.timings: dict[str, float] = {"clone_s": 0.0, "bounds_s": 0.0, "bisect_s": 0.0}
        self.posterior = Posterior(self.history, buggy_is_new=req.terms.buggy_is_new)
        self.records: list[StepRecord] = []
        self.max_runs = req.max_runs or default_max_runs(len(self.history.shas))
        self.warnings: list[str] = []
        self.unfetched: list[g.SubmoduleFailure] = []
        self.installed: tuple[tuple[str, str], ...] | None = None  # deps of the last install
        self.workers: OracleWorkers | None = None  # the default oracle's zygote

    def _workers(self, python: str, env: dict[str, str], clone: Path) -> OracleWorkers:
        self.workers = OracleWorkers(
            python=python, env=env, root=clone, enabled=self.req.oracle == DEFAULT_ORACLE
        )
        return self.workers

    def say(self, text: str) -> None:
        self.progress.say(text)

    def warn(self, text: str) -> None:
        """A line for the output and the report (bisect.json ``warnings``, bisect.md)."""
        self.warnings.append(text)
        self.say(text)

    @property
    def runs(self) -> int:
        """Oracle runs so far; an untestable call counts as one, so skips use the budget."""
        return sum(max(r.runs, 1) for r in self.records)

    def execute(self, common: Path) -> int:
        req, b, n = self.req, self.bounds, len(self.history.shas)
        dirty = g.dirty_files(req.repo)
        if dirty:
            self.warn(dirty_note(req.repo, dirty))
        self.say(opening_lines(req, b.old.sha, b.new.sha, n, self.max_runs, self.run_dir))
        self.progress.budget(self.max_runs)
        self.tmp = Path(tempfile.mkdtemp(prefix="harness-bisect-"))
        clone = self.tmp / "checkout"
        env, oracle = checker_env(dict(req.env)), req.oracle
        if not req.install:  # it imports while git clones
            self._workers(oracle[0], env, clone).start()
        t = time.monotonic()
        g.make_clone(common, clone)
        self.timings["clone_s"] = round(time.monotonic() - t, 3)
        if req.install:
            env, oracle = self._make_venv(env, oracle)
            self._workers(oracle[0], env, clone)  # started by a call that installs nothing
        config = StepConfig(
            oracle=oracle,
            scenario=str(req.scenario.resolve()),
            factory=req.factory,
            repeat=req.repeat,
            policy=req.policy,
            install=req.install,
            checkout=str(clone),
            steps_dir=str(self.run_dir / "steps"),
            terms=req.terms,
            env=env,
            hide=given_values(req.env),
        )
        atomic_write_text(self.run_dir / "step-config.json", config.to_json() + "\n")
        t = time.monotonic()
        self._calibrate(config, clone)
        self.timings["bounds_s"] = round(time.monotonic() - t, 3)
        t = time.monotonic()
        decision = self._search(config, clone)
        self.timings["bisect_s"] = round(time.monotonic() - t, 3)
        return self._conclude(decision, clone)

    def _make_venv(
        self, env: dict[str, str], oracle: tuple[str, ...]
    ) -> tuple[dict[str, str], tuple[str, ...]]:
        """Build the private venv; aim the environment (and an oracle this interpreter would
        run) at it."""
        assert self.tmp is not None and self.req.install is not None
        t, venv = time.monotonic(), self.tmp / "venv"
        seed_pip = "pip" in self.req.install.replace("uv pip", "")
        python = installenv.build(venv, log=self.run_dir / "venv.log", seed_pip=seed_pip)
        self.timings["venv_s"] = round(time.monotonic() - t, 3)
        if oracle and oracle[0] == sys.executable:
            oracle = (str(python), *oracle[1:])
        return installenv.venv_env(env, venv), oracle

    def _call(
        self, config: StepConfig, clone: Path, sha: str, role: Role, bound_term: str = ""
    ) -> StepRecord:
        unfetched = g.checkout(clone, sha, submodules=self.req.submodules, failed=self.unfetched)
        for failure in unfetched:
            if failure not in self.unfetched:
                self.unfetched.append(failure)
                self.warn(submodule_warning(failure.name, failure.url, failure.cause, sha))
        deps = installenv.dependency_key(g.tree_files(clone)) if config.install else None
        install = self.req.install_always or deps != self.installed
        key = f"{bound_term} {role}" if role is Role.BOUND else str(role)
        key = f"{key} {sha[:12]}"
        self.progress.started(key)
        record = run_step(
            config, role, bound_term=bound_term, install=install, workers=self.workers
        )
        if record.install in ("ran", "failed"):
            self.installed = deps if record.install == "ran" else None
        self.records.append(record)
        failed = record.term in ("skip", "abort")  # untestable, or the oracle call failed
        self.progress.finished(key, progress_line(record), failed=failed, units=max(record.runs, 1))
        return record

    def _calibrate(self, config: StepConfig, clone: Path) -> None:
        by_side = calibration.sides(self.bounds.old, self.bounds.new, self.history, self.req.terms)
        while (name := calibration_next(by_side["buggy"].runs, by_side["clean"].runs)) is not None:
            side = by_side[name]
            record = self._call(config, clone, side.bound.sha, Role.BOUND, side.term)
            side.calls.append(record)
            if side.failed:
                break
            side.runs += record.observed
            for shown in record.observed:
                self.posterior.observe(side.index, shown)
        message = calibration.wrong_bounds(by_side)
        if message:
            self.finish(Outcome(status=Status.BAD_BOUNDS, exit_code=2, message=message))
            raise BisectInputError(message)

    def _search(self, config: StepConfig, clone: Path) -> Decision | None:
        """Run the search to its decision; None when an oracle call failed."""
        skipped: set[int] = set()
        while True:
            decision = decide(
                self.posterior,
                frozenset(skipped),
                self.runs,
                confidence=self.req.confidence,
                max_runs=self.max_runs,
            )
            if decision.kind != "test":
                return decision
            x = decision.commit
            record = self._call(config, clone, self.history.shas[x], Role.STEP)
            if record.term == "abort":
                return None
            if record.term == "skip":
                skipped.add(x)
            for shown in record.observed:
                self.posterior.observe(x, shown)

    def _observed(self, answer: int) -> Observed:
        index = {sha: i for i, sha in enumerate(self.history.shas)}
        index[self.bounds.old.sha] = OLD_BOUND
        readings = [(index[r.sha], r.observed) for r in self.records]
        return observed_counts(
            self.history, readings, answer, buggy_is_new=self.req.terms.buggy_is_new
        )

    def _conclude(self, decision: Decision | None, clone: Path) -> int:
        req, (show, alarm) = self.req, self.posterior.rate_estimate()
        if decision is None:
            return self._end(
                Outcome(
                    status=Status.ABORTED,
                    exit_code=1,
                    message=aborted_message(self.records[-1]),
                    show_rate=show,
                    false_alarm_rate=alarm,
                )
            )
        group = decision.candidates or (decision.commit,)
        seen = self._observed(group[0])
        commits = tuple(g.commit_info(req.repo, self.history.shas[c]) for c in group)
        log = bisectlog.record(
            clone,
            self.run_dir / "bisect-log.txt",
            history=self.history,
            terms=req.terms,
            bounds=(self.bounds.old.sha, self.bounds.new.sha),
            records=self.records,
            answer=group[0],
            first_parent=req.first_parent,
        )
        status = _STATUS.get(decision.kind, Status.UNCERTAIN)
        found = status is Status.FOUND
        if found:
            bisectlog.confirm(log, commits[0].sha, req.terms)
        message = conclusion_message(
            status,
            req,
            commits,
            confidence=decision.confidence,
            runs=self.runs,
            calls=len(self.records),
            seen=seen,
            show=show,
            alarm=alarm,
        )
        return self._end(
            Outcome(
                status=status,
                exit_code=0 if found else 1,
                message=message,
                result=commits[0] if found else None,
                possible=() if found else commits,
                confidence=decision.confidence,
                show_rate=show,
                false_alarm_rate=alarm,
                observed=seen,
            )
        )

    def _end(self, outcome: Outcome) -> int:
        self.finish(outcome)
        self.progress.conclude(outcome.message)
        return outcome.exit_code

    def finish(self, outcome: Outcome) -> None:
        """Write bisect.json and bisect.md for whatever has happened so far."""
        report = self.report(outcome)
        atomic_write_text(
            self.run_dir / "bisect.json", json.dumps(report.to_dict(), indent=2) + "\n"
        )
        atomic_write_text(self.run_dir / "bisect.md", render_markdown(report))

    def print_report(self, out: TextIO) -> None:
        """Copy bisect.json, when :meth:`finish` wrote one, to ``out``."""
        path = self.run_dir / "bisect.json"
        if path.is_file():
            out.write(path.read_text(encoding="utf-8"))
            out.flush()

    def report(self, outcome: Outcome) -> BisectReport:
        req = self.req
        resolved = replace(
            req,
            repo=req.repo.resolve(),
            scenario=req.scenario.resolve(),
            max_runs=self.max_runs,
            report_dir=req.report_dir.resolve(),
        )
        return BisectReport(
            id=self.run_dir.name,
            started=self.started,
            request=resolved,
            old=self.bounds.old,
            new=self.bounds.new,
            candidates=len(self.history.shas),
            outcome=outcome,
            steps=tuple(self.records),
            timings={**self.timings, "wall_s": round(time.monotonic() - self.t0, 3)},
            warnings=tuple(self.warnings),
            unfetched_submodules=tuple(f.to_dict() for f in self.unfetched),
        )

    def remove_clone(self) -> None:
        if self.workers is not None:
            self.workers.close()  # its forked runs may still be in the checkout
        if self.tmp is None:
            return
        try:
            shutil.rmtree(self.tmp)
        except OSError as exc:  # say so: a leftover temp dir is the user's to delete
            print(f"harness bisect: warning: could not remove {self.tmp}: {exc}", file=sys.stderr)
        self.tmp = None
