"""One oracle call: test the commit checked out in the private clone with ``harness check``.

The driver checks a commit out, then calls :func:`run_step`: it runs the optional install
command, then the oracle with ``--json`` into the run's ``steps/`` folder (outside the
checkout, so the tree stays clean), scrubs the checkout, and writes its :class:`StepRecord`
atomically. An untestable commit (factory not importable, install failed) reads as a skip,
never as the new or old term; any other oracle exit aborts the search.

Install command and oracle run with the checker's environment (:func:`child_env`): the
interpreter that runs ``harness bisect`` (``$HARNESS_PYTHON``), its virtualenv's ``bin`` first
on ``PATH`` and ``VIRTUAL_ENV`` set when it runs in one, plus every ``--env KEY=VALUE``.
The children get that environment whole; what is written of it is redacted
(:mod:`harness.redact`): ``step-config.json`` holds :func:`~harness.redact.redact_env` of it,
and each log, and the oracle's ``--json`` file, is scrubbed of secret values and of the
``--env`` values it hides (:func:`~harness.redact.given_values`) once its child has exited.

Every child is started by :func:`harness.processes.spawn` (its own session, a lifeline): on
any interruption its whole process tree is killed there, the one way the harness kills.
The default oracle's runs fork from the bisect's zygote (:mod:`harness.bisect.workers`):
the call gets a connection to it, and its hang-up, killed or not, ends the runs it forked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bisect.git import commit_info, git, scrub
from harness.bisect.model import CheckMetrics, Role, StepRecord, Terms
from harness.bisect.search import (
    bisect_exit,
    observed_runs,
    read_check,
    read_versions,
    term_of,
    word_of,
)
from harness.bisect.workers import OracleWorkers
from harness.environment import ZYGOTE_FD_ENV, harness_env
from harness.processes import spawn
from harness.redact import redact_env, scrub_file
from harness.report.layout import atomic_write_text

__all__ = ["DEFAULT_ORACLE", "StepConfig", "checker_env", "run_step"]

# `harness check` on this interpreter; -P: the oracle's folder (steps/) is not on its path
DEFAULT_ORACLE = (sys.executable, "-P", "-m", "harness", "check")


@dataclass(frozen=True)
class StepConfig:
    """What every oracle call runs with; the driver keeps it as ``step-config.json``."""

    oracle: tuple[str, ...]  # argv prefix, e.g. (python, "-P", "-m", "harness", "check")
    scenario: str  # absolute path
    factory: str
    repeat: int
    policy: str
    install: str | None  # shell command run in the checkout before testing, or none
    checkout: str  # the private clone
    steps_dir: str  # outside the checkout
    terms: Terms
    env: Mapping[str, str]  # the whole environment of install command and oracle
    hide: tuple[str, ...] = ()  # --env values scrubbed from what the children write; unwritten

    def to_json(self) -> str:
        """The config as ``step-config.json`` holds it: ``env`` redacted (never a secret)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "hide"}
        data["terms"] = {"old": self.terms.old, "new": self.terms.new}
        return json.dumps(
            {**data, "oracle": list(self.oracle), "env": redact_env(self.env)}, indent=2
        )


# --- processes --------------------------------------------------------------------------------


def run_logged(
    argv: Sequence[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    hide: Sequence[str] = (),
    zygote: socket.socket | None = None,
) -> int:
    """Run a child (argv: the oracle; a str: the user's shell command) with its output in
    ``log``, scrubbed of the secret values in ``env`` and of ``hide``; return its exit code.
    ``zygote``: a connection the child gets (:data:`~harness.environment.ZYGOTE_FD_ENV`),
    closed here once it is started. However we leave (Ctrl-C included), its whole tree is
    killed (:mod:`harness.processes`)."""
    command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
    fds: tuple[int, ...] = ()
    child_env = dict(env)
    if zygote is not None:
        fds, child_env[ZYGOTE_FD_ENV] = (zygote.fileno(),), str(zygote.fileno())
    try:
        with log.open("wb") as out:
            try:
                child = spawn(
                    command, cwd=cwd, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                    pass_fds=fds,
                )  # fmt: skip
            finally:
                if zygote is not None:
                    zygote.close()  # the child's copy is the one that counts
            with child:
                code = child.wait()
    finally:
        if log.is_file():  # also when interrupted: an install command may echo its secrets
            scrub_file(log, env, hide)
    assert code is not None  # no timeout given: wait returns only once the child exited
    return code


def last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text("utf-8", errors="replace").splitlines()]
    return next((ln for ln in reversed(lines) if ln), "")


# --- one step -----------------------------------------------------------------------------


def _next_index(steps_dir: Path) -> int:
    return len(list(steps_dir.glob("*.step.json"))) + 1


def checker_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of the install command and the oracle (see the module docstring):
    no bytecode files written into the checkout, this harness importable, ``extra`` last."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HARNESS_PYTHON": sys.executable}
    scripts = sysconfig.get_path("scripts")
    if sys.prefix != sys.base_prefix:  # a virtualenv: what `activate` would set
        env["VIRTUAL_ENV"] = sys.prefix
        env.pop("PYTHONHOME", None)
    path = [scripts, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != scripts)]
    env["PATH"] = os.pathsep.join(path)
    return harness_env({**env, **extra})


def run_step(
    config: StepConfig,
    role: Role,
    *,
    bound_term: str = "",
    install: bool = True,
    workers: OracleWorkers | None = None,
) -> StepRecord:
    """Test the commit checked out in ``config.checkout``; write and return its record
    (a bound's calibration call names the bound by its term, ``bound_term``).
    ``install=False`` skips ``config.install`` (the driver found the dependency files
    unchanged since the last install); the record says which (``install``). ``workers``:
    the zygote the oracle's runs fork from (stopped here before an install runs).
    The commit is scrubbed afterwards, also when the call is interrupted."""
    started, t0 = time.time(), time.monotonic()
    checkout, steps = Path(config.checkout), Path(config.steps_dir)
    sha = git(["rev-parse", "HEAD"], cwd=checkout, what="read the commit under test").strip()
    commit = commit_info(checkout, sha)
    index = _next_index(steps)
    stem = f"{index:03d}-{commit.short}"
    files: dict[str, str] = {}
    install_s, oracle_exit, detail = 0.0, 125, ""
    installed = "skipped" if config.install else ""
    packages: dict[str, str] = {}
    try:
        if config.install and install:
            if workers is not None:
                workers.stop()  # what it preloaded may be what the install replaces
            installed = "ran"
            files["install_log"] = f"steps/{stem}.install.log"
            code = run_logged(
                config.install,
                cwd=checkout,
                env=config.env,
                log=steps / f"{stem}.install.log",
                hide=config.hide,
            )
            install_s = time.monotonic() - t0
            if code != 0:
                why = last_line(steps / f"{stem}.install.log")
                detail = f"install command exited {code}" + (f": {why}" if why else "")
                installed = "failed"
        if not detail:
            zygote = None if workers is None else workers.share(installed=installed == "ran")
            oracle_exit, metrics, detail = _oracle(config, steps, stem, files, packages, zygote)
        else:
            metrics = CheckMetrics()
    finally:
        scrub(checkout)  # also on failure: the next checkout must find a clean tree
    word = word_of(oracle_exit)
    term = term_of(word, config.terms)
    record = StepRecord(
        index=index,
        role=role,
        sha=sha,
        short=commit.short,
        subject=commit.subject,
        oracle_exit=oracle_exit,
        verdict=word,
        term=term,
        bisect_exit=bisect_exit(term, config.terms),
        observed=observed_runs(metrics, word),
        metrics=metrics,
        install_s=round(install_s, 3),
        oracle_s=round(time.monotonic() - t0 - install_s, 3),
        step_s=round(time.monotonic() - t0, 3),
        started=started,
        finished=time.time(),
        detail=detail,
        files=files,
        install=installed,
        packages=packages,
        bound_term=bound_term,
    )
    atomic_write_text(steps / f"{stem}.step.json", json.dumps(record.to_dict(), indent=2) + "\n")
    return record


def _oracle(
    config: StepConfig,
    steps: Path,
    stem: str,
    files: dict[str, str],
    packages: dict[str, str],
    zygote: socket.socket | None,
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
    code = run_logged(
        argv, cwd=steps, env=config.env, log=log_path, hide=config.hide, zygote=zygote
    )
    metrics = CheckMetrics()
    if json_path.is_file():
        # the oracle scrubbed its environment's secret-named values; the --env ones it cannot
        # tell from the rest of its environment
        scrub_file(json_path, config.env, config.hide)
        data = json.loads(json_path.read_text("utf-8"))
        metrics = read_check(data)
        packages.update(read_versions(data))
    # the verdict's reasons say why (e.g. the import error); else the oracle's last words
    detail = "" if code in (0, 1) else "; ".join(metrics.reasons) or last_line(log_path)
    return code, metrics, detail
