"""``harness bisect``: its arguments and entry point (the search is :mod:`harness.bisect`)."""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
from pathlib import Path

from harness.bisect.driver import run_bisect
from harness.bisect.git import SUBMODULE_MODES
from harness.bisect.model import (
    DEFAULT_CONFIDENCE,
    FIX_TERMS,
    REGRESSION_TERMS,
    BisectRequest,
)
from harness.bisect.step import DEFAULT_ORACLE
from harness.commands._common import positive_int, scenario_file
from harness.commands.registry import command
from harness.errors import UsageError
from harness.progress import choose_mode, make_progress

__all__ = ["COMMAND", "DEFAULT_ORACLE", "request_from"]


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
    parser.add_argument(
        "--scenario",
        type=Path,
        required=True,
        help="scenario YAML file or bundled scenario name",
    )
    parser.add_argument(
        "--factory",
        required=True,
        metavar="SPEC",
        help="factory spec resolved inside each checkout, "
        "e.g. gateway/factory.py:create_openai_client, or an adapter at an absolute path",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=1, help="runs per oracle call (default: 1)"
    )
    parser.add_argument(
        "--policy",
        choices=("majority", "any"),
        default="majority",
        help="how an oracle call's repeated runs decide its verdict (default: majority)",
    )
    parser.add_argument(
        "--confidence",
        type=_confidence,
        default=DEFAULT_CONFIDENCE,
        help=f"stop when one commit is this likely (default: {DEFAULT_CONFIDENCE})",
    )
    parser.add_argument(
        "--max-runs",
        type=_max_runs,
        metavar="N",
        help="oracle runs at most, bounds included (default: 5 x (ceil(log2 commits) + 4))",
    )
    parser.add_argument(
        "--first-parent",
        action="store_true",
        help="follow only the first parent of merges (git bisect start --first-parent)",
    )
    parser.add_argument(
        "--install",
        metavar="CMD",
        help="shell command run in a checkout before testing it, in a private virtualenv "
        "($HARNESS_PYTHON, its bin first on PATH) removed at the end; it runs again only when "
        "a commit's dependency files changed; a failure skips the commit",
    )
    parser.add_argument(
        "--install-always",
        action="store_true",
        help="run --install at every commit, not only where the dependency files changed",
    )
    parser.add_argument(
        "--submodules",
        choices=SUBMODULE_MODES,
        default="auto",
        help="auto: fetch each commit's submodules, warn and go on without one git cannot "
        "fetch; require: such a submodule is an error (exit 3); skip: fetch none "
        "(default: auto)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set this variable for every install command and oracle run (repeatable)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports"),
        help="where bisect-<id>/ goes (default: reports/)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the conclusion line (bisect-<id>/bisect.json holds every detail)",
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print only bisect.json's text once the bisect has ended, however it ended",
    )
    parser.add_argument(
        "--oracle",
        metavar="CMD",
        default=shlex.join(DEFAULT_ORACLE),
        help="the oracle command; takes check's arguments and exit codes "
        "(default: this Python's `harness check`)",
    )


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.5 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability between 0.5 and 1")
    return value


def _max_runs(text: str) -> int:
    """argparse type: a run budget; each bound is checked once, so 2 at least."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too few: each bound takes one run; pass 2 or more"
        )
    return value


def _env(entries: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for number, entry in enumerate(entries, 1):
        key, sep, value = entry.partition("=")
        if not sep or not key or "\0" in entry:
            # the text is not echoed: a value given without its KEY= may be a secret
            raise UsageError(
                f"--env argument {number}: not KEY=VALUE (its text is not shown); "
                "pass e.g. --env HOME=/tmp/home"
            )
        pairs.append((key, value))
    return tuple(pairs)


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
    oracle = tuple(shlex.split(ns.oracle))
    if not oracle:
        raise UsageError("--oracle: empty command; leave it out to use `harness check`")
    return BisectRequest(
        repo=ns.repo,
        old_ref=ns.good if regression else ns.broken,
        new_ref=ns.bad if regression else ns.fixed,
        terms=REGRESSION_TERMS if regression else FIX_TERMS,
        scenario=scenario_file(ns.scenario),
        factory=ns.factory,
        oracle=oracle,
        repeat=ns.repeat,
        policy=ns.policy,
        install=ns.install,
        env=_env(ns.env),
        install_always=ns.install_always,
        submodules=ns.submodules,
        first_parent=ns.first_parent,
        confidence=ns.confidence,
        max_runs=ns.max_runs,
        report_dir=ns.report_dir,
    )


def main(ns: argparse.Namespace) -> int:
    """Run the bisect; on a terminal with a live display, with ``--quiet`` printing only the
    conclusion line (the first bad commit, or why none was named), with ``--json`` only the
    report (bisect.json's text)."""
    if ns.json:  # the lines go nowhere; bisect.json's text goes to stdout at the end
        return run_bisect(request_from(ns), out=io.StringIO(), json_to=sys.stdout)
    mode = choose_mode(sys.stdout, quiet=ns.quiet, env=os.environ)
    progress = make_progress(mode, sys.stdout, what="oracle runs", failed_word="untestable")
    with progress:
        return run_bisect(request_from(ns), out=sys.stdout, progress=progress)


COMMAND = command("bisect", add_arguments, main)
