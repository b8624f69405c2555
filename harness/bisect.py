"""``harness bisect``: find the commit that introduced (or fixed) a connection-lifecycle bug.

Theory of operation
-------------------
1. Validate without writing anything: the repository, both refs (resolved to shas in the
   user's repository), ancestry, the scenario file. Bad input raises ``BisectInputError`` or
   ``ScenarioError``: one line, exit 2, nothing created.
2. Make a private ``git clone --shared --no-checkout`` in a temporary directory
   (:mod:`harness.bisect_git` explains why a clone and not a worktree). All checkouts and all
   ``git bisect`` state live there; the user's repository is only ever read.
3. Test both bounds with the same ``--repeat``/``--policy`` as every step; a bound that does not
   show what it should is bad input (exit 2, naming the bound and what was measured).
4. ``git bisect start --term-old=good --term-new=bad`` (``broken``/``fixed`` for a fix search),
   then ``git bisect run python -P -m harness.bisect_step CONFIG``: each step calls
   ``harness check`` and maps its verdict to the exit code of the right term
   (:mod:`harness.bisect_step`). Step output goes to the run folder, never into the checkout.
5. Read the outcome from ``git bisect log``, write ``bisect.json``, ``bisect.md`` and the log
   into ``<report-dir>/bisect-<id>/``, remove the clone.

SIGINT and SIGTERM raise :class:`Interrupted` in the main thread; whatever runs then (the
oracle, ``git bisect run`` and everything below it, also processes in other sessions) is
terminated as a tree, the clone is removed, a partial report is written, and the command
exits 128 + the signal number (130 for Ctrl-C). Further signals are ignored while cleaning up.

Exit codes: 0 a commit was named, 1 bisect could not name one (only skipped commits left, or
a step aborted), 2 bad input, 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from harness import bisect_git as g
from harness.bisect_report import (
    bound_message,
    build_report,
    expected_steps,
    progress_line,
    render_markdown,
)
from harness.bisect_step import MARKER, StepConfig, StepRecord, kill_tree, run_step
from harness.commands._common import positive_int
from harness.environment import harness_env
from harness.errors import BisectInputError, HarnessError, UsageError
from harness.report.layout import atomic_write_text
from harness.scenario import load_scenario

__all__ = ["BisectRequest", "Interrupted", "add_arguments", "main", "run_bisect"]

DEFAULT_ORACLE = (sys.executable, "-P", "-m", "harness", "check")


class Interrupted(BaseException):  # like KeyboardInterrupt: not an Exception
    """SIGINT or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class BisectRequest:
    """One bisect, as given on the command line (refs not yet resolved)."""

    repo: Path
    old_ref: str  # --good or --broken
    new_ref: str  # --bad or --fixed
    terms: g.Terms
    scenario: Path
    factory: str
    repeat: int = 1
    policy: str = "majority"
    install: str | None = None
    report_dir: Path = Path("reports")
    oracle: tuple[str, ...] = DEFAULT_ORACLE

    @property
    def old_option(self) -> str:
        return f"--{self.terms.old}"

    @property
    def new_option(self) -> str:
        return f"--{self.terms.new}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, required=True, help="the git repository to search")
    parser.add_argument("--good", metavar="REF", help="a commit without the regression")
    parser.add_argument("--bad", metavar="REF", help="a later commit with the regression")
    parser.add_argument(
        "--broken",
        metavar="REF",
        help="instead of --good/--bad: a commit with the bug (find the fix)",
    )
    parser.add_argument("--fixed", metavar="REF", help="a later commit where the bug is gone")
    parser.add_argument("--scenario", type=Path, required=True, help="scenario YAML file")
    parser.add_argument(
        "--factory",
        required=True,
        metavar="SPEC",
        help="factory spec resolved inside each checkout, "
        "e.g. gateway/factory.py:create_openai_client",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=1, help="runs per tested commit (default: 1)"
    )
    parser.add_argument(
        "--policy",
        choices=("majority", "any"),
        default="majority",
        help="how repeated runs decide (default: majority)",
    )
    parser.add_argument(
        "--install",
        metavar="CMD",
        help="shell command run in each checkout before testing it; a failure skips the commit",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports"),
        help="where bisect-<id>/ goes (default: reports/)",
    )
    parser.add_argument(
        "--oracle",
        metavar="CMD",
        default=shlex.join(DEFAULT_ORACLE),
        help="the oracle command; takes check's arguments and exit codes "
        "(default: this Python's `harness check`)",
    )


def request_from(ns: argparse.Namespace) -> BisectRequest:
    """The request the arguments describe; UsageError unless exactly one pair is given."""
    regression = ns.good is not None or ns.bad is not None
    fix = ns.broken is not None or ns.fixed is not None
    if (
        regression == fix
        or (regression and None in (ns.good, ns.bad))
        or (fix and None in (ns.broken, ns.fixed))
    ):
        raise UsageError(
            "give either --good REF --bad REF (find the first bad commit) or "
            "--broken REF --fixed REF (find the first fixed commit)"
        )
    terms = g.REGRESSION_TERMS if regression else g.FIX_TERMS
    oracle = tuple(shlex.split(ns.oracle))
    if not oracle:
        raise UsageError("--oracle: empty command; leave it out to use `harness check`")
    return BisectRequest(
        repo=ns.repo,
        old_ref=ns.good if regression else ns.broken,
        new_ref=ns.bad if regression else ns.fixed,
        terms=terms,
        scenario=ns.scenario,
        factory=ns.factory,
        repeat=ns.repeat,
        policy=ns.policy,
        install=ns.install,
        report_dir=ns.report_dir,
        oracle=oracle,
    )


def main(ns: argparse.Namespace) -> int:
    return run_bisect(request_from(ns), out=sys.stdout)


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bounds:
    old: str  # sha
    new: str
    candidates: int


def validate(req: BisectRequest) -> tuple[Path, _Bounds]:
    """Check every input without writing anything; return the git dir and resolved bounds."""
    common = g.common_dir(req.repo)
    old = g.resolve(req.repo, req.old_ref, req.old_option)
    new = g.resolve(req.repo, req.new_ref, req.new_option)
    if old == new:
        raise BisectInputError(
            f"{req.old_option} {req.old_ref!r} and {req.new_option} "
            f"{req.new_ref!r} are the same commit; pass two different ones"
        )
    if not g.is_ancestor(req.repo, old, new):
        raise BisectInputError(
            f"{req.old_option} {req.old_ref!r} is not an ancestor of {req.new_option} "
            f"{req.new_ref!r}; pass an older {req.old_option} commit on the same history"
        )
    load_scenario(req.scenario)  # ScenarioError names file, line and key
    return common, _Bounds(old, new, g.count_between(req.repo, old, new))


def run_bisect(req: BisectRequest, *, out: TextIO) -> int:
    """Run the whole bisect; return the exit code. See the module docstring."""
    common, bounds = validate(req)
    run = _Run(req, bounds, _make_run_dir(req.report_dir), out)
    with _handlers(_raise_interrupted):
        try:
            code = run.execute(common)
        except UsageError:
            raise  # bad bounds: the report is written, the CLI prints the one line
        except HarnessError as exc:
            with _handlers(signal.SIG_IGN):
                run.finish("error", 1, str(exc))
            print(f"harness bisect: error: {exc}", file=sys.stderr)
            return 1
        except Interrupted as exc:
            with _handlers(signal.SIG_IGN):
                run.finish("interrupted", 128 + exc.signum, f"interrupted by {exc}")
            print("harness bisect: interrupted; the repository is unchanged", file=sys.stderr)
            return 128 + exc.signum
        finally:
            with _handlers(signal.SIG_IGN):
                run.remove_clone()
    return code


def _make_run_dir(report_dir: Path) -> Path:
    now = datetime.now(UTC)
    stamp = f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"
    for attempt in range(100):
        path = report_dir.resolve() / f"bisect-{stamp}{'' if not attempt else f'-{attempt}'}"
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BisectInputError(
                f"--report-dir {str(report_dir)!r}: cannot create {path}: "
                f"{exc.strerror}; pass a writable folder"
            ) from exc
        (path / "steps").mkdir()
        return path
    raise HarnessError(f"cannot find a free report folder name under {report_dir}")


class _Run:
    """The state of one bisect while it runs; ``finish`` writes its report."""

    def __init__(self, req: BisectRequest, bounds: _Bounds, run_dir: Path, out: TextIO) -> None:
        self.req, self.bounds, self.run_dir, self.out = req, bounds, run_dir, out
        self.t0, self.started = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
        self.tmp: Path | None = None
        self.timings: dict[str, float] = {"clone_s": 0.0, "bounds_s": 0.0, "bisect_s": 0.0}
        self.result: dict[str, Any] | None = None
        self.possible: list[dict[str, Any]] = []

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def execute(self, common: Path) -> int:
        req, b = self.req, self.bounds
        plural = "s" if b.candidates > 1 else ""
        self.say(
            f"bisecting {b.candidates} commit{plural}: {req.old_option} {b.old[:12]} .. "
            f"{req.new_option} {b.new[:12]} (about {expected_steps(b.candidates)} steps); "
            f"report: {self.run_dir}"
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="harness-bisect-"))
        clone = self.tmp / "checkout"
        t = time.monotonic()
        g.make_clone(common, clone)
        self.timings["clone_s"] = round(time.monotonic() - t, 3)
        config = StepConfig(
            oracle=req.oracle,
            scenario=str(req.scenario.resolve()),
            factory=req.factory,
            repeat=req.repeat,
            policy=req.policy,
            install=req.install,
            checkout=str(clone),
            steps_dir=str(self.run_dir / "steps"),
            terms=req.terms,
        )
        config_path = self.run_dir / "step-config.json"
        atomic_write_text(config_path, config.to_json() + "\n")
        t = time.monotonic()
        self._check_bounds(config, clone)
        self.timings["bounds_s"] = round(time.monotonic() - t, 3)
        t = time.monotonic()
        log = self._bisect(clone, config_path)
        self.timings["bisect_s"] = round(time.monotonic() - t, 3)
        return self._conclude(g.parse_bisect_log(log, req.terms))

    def _check_bounds(self, config: StepConfig, clone: Path) -> None:
        req, healthy_first = self.req, req_is_regression(self.req)
        wants = [
            (req.old_option, self.bounds.old, "healthy" if healthy_first else "regression"),
            (req.new_option, self.bounds.new, "regression" if healthy_first else "healthy"),
        ]
        wrong: list[str] = []
        for option, sha, want in wants:
            g.checkout(clone, sha)
            record = run_step(config, f"{option[2:]} bound")
            self.say(progress_line(record))
            if record.verdict != want:
                wrong.append(bound_message(option, record, want))
        if wrong:
            message = "; ".join(wrong)
            self.finish("bad-bounds", 2, message)
            raise BisectInputError(message)

    def _bisect(self, clone: Path, config_path: Path) -> str:
        start = g.bisect_start(clone, self.req.terms, self.bounds.old, self.bounds.new)
        log_path = self.run_dir / "git-bisect-run.log"
        with log_path.open("w", encoding="utf-8") as log:
            log.write(start)
            if g.parse_bisect_log(g.bisect_log(clone), self.req.terms).kind == "unfinished":
                self._bisect_run(clone, config_path, log)
        text = g.bisect_log(clone)
        atomic_write_text(self.run_dir / "bisect-log.txt", text)
        return text

    def _bisect_run(self, clone: Path, config_path: Path, log: TextIO) -> None:
        argv = [
            "git",
            "bisect",
            "run",
            sys.executable,
            "-P",
            "-m",
            "harness.bisect_step",
            str(config_path),
        ]
        proc = subprocess.Popen(
            argv,
            cwd=clone,
            env=harness_env(g.git_env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # Ctrl-C reaches only us; we stop the tree ourselves
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if line.startswith(MARKER):
                    self.say(line[len(MARKER) :].rstrip("\n"))
            proc.wait()
        except BaseException:
            kill_tree(proc.pid)
            proc.wait()
            raise
        log.write(f"[git bisect run exited {proc.returncode}]\n")

    def _conclude(self, outcome: g.BisectOutcome) -> int:
        req = self.req
        if outcome.kind == "found":
            commit = g.commit_info(req.repo, outcome.sha)
            self.result = commit.to_dict()
            message = (
                f"first {req.terms.new} commit: {commit.sha} {commit.subject!r} "
                f"by {commit.author} on {commit.date}"
            )
            self.finish("found", 0, message)
            self.say(message)
            return 0
        if outcome.kind == "skipped":
            self.possible = [g.commit_info(req.repo, s).to_dict() for s in outcome.candidates]
            shown = ", ".join(f"{c['short']} {c['subject']!r}" for c in self.possible)
            message = (
                f"no single first {req.terms.new} commit: only untestable (skipped) "
                f"commits are left; it is one of {shown}"
            )
        else:
            last = next((r for r in reversed(self.records()) if r.term == "abort"), None)
            why = f": {last.short} {last.detail}" if last else "; see git-bisect-run.log"
            message = f"git bisect stopped before naming a commit{why}"
        self.finish("skipped" if outcome.kind == "skipped" else "aborted", 1, message)
        self.say(message)
        return 1

    def records(self) -> list[StepRecord]:
        steps = sorted((self.run_dir / "steps").glob("*.step.json"))
        return [StepRecord.from_dict(json.loads(p.read_text("utf-8"))) for p in steps]

    def finish(self, status: str, code: int, message: str) -> None:
        """Write bisect.json and bisect.md for whatever has happened so far."""
        report = self._report(status, code, message)
        atomic_write_text(self.run_dir / "bisect.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(self.run_dir / "bisect.md", render_markdown(report))

    def _setup(self) -> dict[str, Any]:
        """The part of the report fixed before the first step."""
        req, b = self.req, self.bounds
        return {
            "schema": 1,
            "command": "bisect",
            "id": self.run_dir.name,
            "started": self.started,
            "search": req.terms.search,
            "terms": {"old": req.terms.old, "new": req.terms.new},
            "repo": str(req.repo.resolve()),
            "scenario": str(req.scenario.resolve()),
            "factory": req.factory,
            "repeat": req.repeat,
            "policy": req.policy,
            "install": req.install,
            "oracle_command": list(req.oracle),
            "bounds": {
                "old": {"option": req.old_option, "ref": req.old_ref, "sha": b.old},
                "new": {"option": req.new_option, "ref": req.new_ref, "sha": b.new},
            },
            "candidates": b.candidates,
        }

    def _report(self, status: str, code: int, message: str) -> dict[str, Any]:
        timings = {**self.timings, "wall_s": round(time.monotonic() - self.t0, 3)}
        outcome = {"status": status, "exit_code": code, "message": message}
        found = {"result": self.result, "possible": self.possible}
        return build_report(self._setup(), outcome, found, self.records(), timings)

    def remove_clone(self) -> None:
        if self.tmp is None:
            return
        try:
            shutil.rmtree(self.tmp)
        except OSError as exc:  # say so: a leftover temp dir is the user's to delete
            print(f"harness bisect: warning: could not remove {self.tmp}: {exc}", file=sys.stderr)
        self.tmp = None


def req_is_regression(req: BisectRequest) -> bool:
    return req.terms.search == "regression"


# --- signals ---------------------------------------------------------------------------------

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def _handlers(handler: _Handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread; nothing to install
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in saved.items():
            signal.signal(s, old)
