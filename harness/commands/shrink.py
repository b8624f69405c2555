"""``harness shrink SCENARIO --factory SPEC``: the smallest scenario that still catches it.

Every candidate is judged by real runs, each the run ``harness check`` makes (one cell of
:func:`harness.matrix.run_matrix` on a zygote's workers, judged by :func:`harness.verdict.
judge`); :mod:`harness.shrink` decides what to try and how often to re-run a miss. Prints a
line per candidate (live progress on a terminal, nothing but the conclusion with
``--quiet``), then what each field's steps removed and cost, and writes the result as a
commented scenario file (:mod:`harness.shrink_yaml`).

Exit codes: 0 the shrunk scenario was written (also when nothing could be removed); 1 the
scenario as given does not show the regression (or ``--reason``) with this factory, nothing
written; 2 bad input (a missing or invalid scenario, an unknown ``--reason``, an unwritable
``--out``, a factory whose first run is untestable); 130/143 interrupted, nothing written.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from harness.commands._common import (
    add_max_duration_argument,
    add_root_argument,
    positive_int,
    scenario_file,
)
from harness.commands.registry import command
from harness.errors import UsageError
from harness.fields import field_names
from harness.matrix import Cell, run_matrix
from harness.progress import Progress, choose_mode, make_progress
from harness.report.layout import atomic_write_text
from harness.runner import run_one
from harness.scenario import Expectations, Scenario, load_scenario
from harness.shrink import NotReproduced, ShrinkResult, Step, expected_runs, shows, shrink
from harness.shrink_yaml import render, summary_lines
from harness.verdict import REASON_KEYS
from harness.zygote import Zygote, workers_for

SHRUNK, NOT_REPRODUCED = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", type=Path, help="scenario YAML file or bundled scenario name")
    parser.add_argument(
        "--factory",
        required=True,
        metavar="SPEC",
        help="bundled variant, package.module:function or path/to/file.py:function",
    )
    parser.add_argument(
        "--reason",
        metavar="KEY",
        help="keep this verdict reason showing, e.g. errors or close_wait_after_gc "
        "(default: any regression, as `harness check` judges it)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write it (default: NAME-min.yaml)"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        metavar="N",
        help="runs at most per candidate, re-running a miss of a flaky regression (default: 3)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the conclusion")
    add_root_argument(parser, "the factory is resolved: the checkout under test")
    add_max_duration_argument(parser)


def main(ns: argparse.Namespace) -> int:
    path = scenario_file(ns.scenario)
    scenario = load_scenario(path, max_duration_s=ns.max_duration)
    if ns.reason is not None and ns.reason not in REASON_KEYS:
        raise UsageError(f"--reason {ns.reason!r} is not a verdict reason; use one of: "
                         f"{', '.join(REASON_KEYS)}")  # fmt: skip
    if ns.reason in field_names(Expectations) and getattr(scenario.expect, ns.reason) is None:
        raise UsageError(
            f"{path}: `expect:` sets no {ns.reason} threshold, so no run can show it; "
            f"add `expect: {{{ns.reason}: 0}}` or pick another --reason"
        )
    out: Path = ns.out or Path(f"{scenario.name}-min.yaml")
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: not a file in an existing folder; "
                         "create the folder or pick another path")  # fmt: skip
    if out.resolve() == path.resolve():
        raise UsageError(f"--out {str(out)!r} is the scenario itself; pick another path")
    what = f"verdict reason {ns.reason!r}" if ns.reason else "a regression"
    mode = choose_mode(sys.stdout, quiet=ns.quiet, env=os.environ)
    progress = make_progress(mode, sys.stdout, what="oracle runs", failed_word="lost it")
    root = ns.root.resolve()
    with workers_for(root) as zygote, progress:
        oracle = _Oracle(ns.factory, ns.reason, root, zygote)
        progress.budget(expected_runs(scenario, ns.repeats))
        try:
            result = shrink(
                scenario,
                oracle,
                repeats=ns.repeats,
                on_start=progress.started,
                on_step=functools.partial(_finished, progress),
                on_runs=functools.partial(_ran, progress),
            )
        except NotReproduced as exc:
            progress.conclude(
                f"harness shrink: {scenario.name} does not reproduce {what} with "
                f"{ns.factory}: {exc}; nothing to shrink, nothing written"
            )
            return NOT_REPRODUCED
        text = render(result, source=str(path), factory=ns.factory, what=what, out=str(out))
        atomic_write_text(out, text)
        _conclude(progress, result, out)
    return SHRUNK


class _Oracle:
    """One run of a candidate, as ``harness check`` runs it: did it show ``reason``?"""

    def __init__(self, factory: str, reason: str | None, root: Path, zygote: Zygote | None):
        self.factory, self.reason, self.root = factory, reason, root
        self.runner = functools.partial(run_one, zygote=zygote)
        self.testable = False  # a run so far was testable

    def __call__(self, scenario: Scenario) -> bool:
        cell = Cell(scenario, self.factory, "pass")
        outcome = run_matrix([cell], repeat=1, jobs=1, root=self.root, runner=self.runner)
        if outcome.interrupted:
            raise KeyboardInterrupt
        run, verdict = outcome.entries[0].runs[0], outcome.entries[0].verdicts[0]
        if run.status == "untestable" and not self.testable:
            # the first run, on the scenario as given: the factory itself is unusable
            raise UsageError(f"{self.factory}: untestable: {run.detail}")
        self.testable = True
        return shows(run, verdict, self.reason)


def _ran(progress: Progress, what: str, runs: tuple[bool, ...]) -> None:
    which = "the scenario as given" if what == "calibration" else "the result"
    line = f"{what}: {which} showed it in {_of(runs)}"
    progress.finished(what, line, failed=not any(runs), units=len(runs))


def _of(runs: tuple[bool, ...]) -> str:
    return f"{sum(runs)} of {len(runs)} run{'' if len(runs) == 1 else 's'}"


def _finished(progress: Progress, step: Step) -> None:
    word = "kept it" if step.kept else "lost it"
    line = f"{step.field} {step.before} -> {step.after}: {word} (shown in {_of(step.runs)})"
    label = f"{step.field} {step.before} -> {step.after}"
    progress.finished(label, line, failed=not step.kept, units=len(step.runs))


def _conclude(progress: Progress, result: ShrinkResult, out: Path) -> None:
    for line in summary_lines(result) or ["nothing could be removed"]:
        progress.say(line)
    if not any(result.verification):  # a kept candidate's run was a false alarm
        progress.say(
            "warning: the result did not show it in its verification runs; its runs may have"
            " shown it by chance: check it, or shrink again with --repeats higher"
        )
    progress.conclude(f"shrunk in {result.runs} oracle runs: {out}")


COMMAND = command("shrink", add_arguments, main)
