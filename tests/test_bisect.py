"""The bisect driver against a real git repository whose factory regresses, breaks, and heals.

The module builds one repository (``build_repo``) of 12 commits and copies it per test:

=========  ============================================================================
c0..c1     healthy factory: a fresh OpenAI client per call, the caller's dict untouched
c2 (K)     the regression: the factory plants one shared HTTP client in the caller's dict
c4 (S)     a syntax error (not importable; the search's first pick for c0..c8, so tested)
c5..c8     still mutating
c9 (M)     the fix: the factory copies the dict before adding its client
c10..c11   healthy
=========  ============================================================================

End-to-end tests run ``python -m harness bisect`` with the real ``harness check`` oracle and the
real openai SDK against the mock server on 127.0.0.1. Tests of the driver's own logic (bounds,
skips, merges, shallow clones, submodules) use a fast oracle that reads a STATE file.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _tty import ANSI, run_in_pty
from _wait import until

from harness.bisect import git as g
from harness.bisect.driver import run_bisect
from harness.bisect.model import FIX_TERMS, REGRESSION_TERMS, BisectRequest, Terms
from harness.bisect.search import History, Posterior, calibration_next
from harness.cli import build_parser
from harness.commands.bisect import request_from
from harness.errors import BisectInputError, ScenarioError

N_COMMITS, K, S, M, BAD = 12, 2, 4, 9, 8
FACTORY = "gateway/factory.py:create_openai_client"

# With RUNS_LOG set (--env), each run appends how its worker started: forked from a zygote
# (its imports frozen) or not, and from which process (the worker's supervisor's parent).
RECORD = """
import os

if "RUNS_LOG" in os.environ:
    import gc, psutil

    with open(os.environ["RUNS_LOG"], "a") as log:
        log.write(f"{{gc.get_freeze_count()}} {{psutil.Process(os.getppid()).ppid()}}\\n")
"""

HEALTHY = (
    '''"""Gateway client factory, revision {i}."""
from typing import Any

import openai


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    return openai.OpenAI(**dict(client_kwargs))
'''
    + RECORD
)

MUTATING = (
    '''"""Gateway client factory, revision {i}: one keep-alive client for everything."""
from typing import Any

import openai


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = openai.DefaultHttpxClient()
    return openai.OpenAI(**client_kwargs)
'''
    + RECORD
)

BROKEN = '''"""Gateway client factory, revision {i}: work in progress."""
import openai


def create_openai_client(client_kwargs, *, shared) -> openai.OpenAI
    return openai.OpenAI(**client_kwargs)
'''

FIXED = '''"""Gateway client factory, revision {i}: never touch the caller's dict."""
from typing import Any

import openai


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    kwargs = dict(client_kwargs)
    if shared:
        kwargs["http_client"] = openai.DefaultHttpxClient()
    return openai.OpenAI(**kwargs)
'''

SCENARIO = """\
version: 1
name: bisect-use-after-close
description: A gateway closes each per-request client; a shared transport dies with it.
client:
  kwargs: {max_retries: 0, timeout: 5}
  close_request_clients: true
session:
  turns: 3
  idle_between_turns_ms: 0
expect:
  errors: 0
"""


def _factory_source(i: int) -> str:
    if i < K:
        template = HEALTHY
    elif i == S:
        template = BROKEN
    elif i < M:
        template = MUTATING
    else:
        template = FIXED
    return template.format(i=i)


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**g.git_env(), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def build_repo(repo: Path) -> list[str]:
    """Create the repository; return the sha of c0..c33."""
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "gateway").mkdir()
    (repo / "gateway" / "__init__.py").write_text("", encoding="utf-8")
    shas = []
    for i in range(N_COMMITS):
        (repo / "gateway" / "factory.py").write_text(_factory_source(i), encoding="utf-8")
        (repo / "NOTES.md").write_text(f"revision {i}\n", encoding="utf-8")
        _git(repo, "add", "-A")
        date = f"2026-01-01T00:{i:02d}:00+00:00"
        env = {
            "GIT_AUTHOR_NAME": f"Dev {i % 3}",
            "GIT_AUTHOR_EMAIL": f"dev{i % 3}@example.com",
            "GIT_COMMITTER_NAME": "CI",
            "GIT_COMMITTER_EMAIL": "ci@example.com",
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
        }
        _git(repo, "commit", "--quiet", "--no-verify", "-m", f"c{i}: change {i}", env=env)
        shas.append(_git(repo, "rev-parse", "HEAD").strip())
    return shas


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("bisect-repo")
    shas = build_repo(root / "repo")
    # the fixture's own sanity: the broken commit is the search's first pick, so it is tested
    assert _first_pick(len(shas[1 : BAD + 1])) == S - 1
    return root / "repo", shas


def _first_pick(candidates: int) -> int | None:
    """The search's first commit after a deterministic calibration."""
    posterior = Posterior(History.linear([str(i) for i in range(candidates)]), buggy_is_new=True)
    buggy: list[bool] = []
    clean: list[bool] = []
    while (side := calibration_next(buggy, clean)) is not None:
        (buggy if side == "buggy" else clean).append(side == "buggy")
        posterior.observe(candidates - 1 if side == "buggy" else -1, side == "buggy")
    return posterior.splitting_commit(frozenset())


@pytest.fixture
def repo(pristine: tuple[Path, list[str]], tmp_path: Path) -> Iterator[Path]:
    """A copy of the repository with a user's everyday mess: a stash, an untracked file,
    an unstaged change, on branch main."""
    path = tmp_path / "repo"
    shutil.copytree(pristine[0], path, symlinks=True)
    (path / "NOTES.md").write_text("stashed work\n", encoding="utf-8")
    _git(path, "stash", "push", "--quiet", "-m", "user stash")
    (path / "NOTES.md").write_text("unstaged work\n", encoding="utf-8")
    (path / "scratch.txt").write_text("untracked\n", encoding="utf-8")
    yield path


@pytest.fixture
def shas(pristine: tuple[Path, list[str]]) -> list[str]:
    return pristine[1]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"  # outside the repository
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def repo_state(repo: Path) -> dict[str, Any]:
    """Everything the driver promises not to touch."""
    git_dir = repo / ".git"
    return {
        "head": _git(repo, "rev-parse", "HEAD"),
        "branch": _git(repo, "symbolic-ref", "HEAD"),
        "status": _git(repo, "status", "--porcelain", "--untracked-files=all"),
        "stash": _git(repo, "stash", "list"),
        "refs": _git(repo, "for-each-ref"),
        "worktrees": _git(repo, "worktree", "list", "--porcelain"),
        "git_dir": sorted(p.name for p in git_dir.iterdir() if p.name != "index"),
        "bisect_files": {p.name: p.read_bytes() for p in sorted(git_dir.glob("BISECT_*"))},
        "files": sorted(
            str(p.relative_to(repo))
            for p in repo.rglob("*")
            if ".git" not in p.relative_to(repo).parts
        ),
        "notes": (repo / "NOTES.md").read_text(encoding="utf-8"),
    }


def assert_untouched(repo: Path, before: dict[str, Any], *, own_bisect: bool = False) -> None:
    after = repo_state(repo)
    assert after == before
    if not own_bisect:
        assert after["bisect_files"] == {} and "refs/bisect/" not in after["refs"]
    assert after["worktrees"].count("worktree ") == 1


def harness_bisect(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "bisect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bisect_args(
    repo: Path,
    old: str,
    new: str,
    scenario: Path,
    reports: Path,
    *,
    terms: Terms = REGRESSION_TERMS,
    factory: str = FACTORY,
) -> list[str | Path]:
    """The arguments every bisect here gives: the repository, the two bounds under ``terms``'
    options (--good/--bad, or --broken/--fixed), the scenario, the factory, the report dir."""
    return [
        *("--repo", repo, f"--{terms.old}", old, f"--{terms.new}", new),
        *("--scenario", scenario, "--factory", factory, "--report-dir", reports),
    ]


def runs_of(log: Path) -> list[tuple[int, int]]:
    """What RECORD wrote to ``log``: (frozen objects, zygote pid) of each run, in order."""
    lines = log.read_text(encoding="utf-8").splitlines()
    return [(int(frozen), int(zygote)) for frozen, zygote in map(str.split, lines)]


def only_report(report_dir: Path) -> Path:
    runs = sorted(report_dir.glob("bisect-*"))
    assert len(runs) == 1, runs
    return runs[0]


# --- end to end ---------------------------------------------------------------------------


def test_names_the_first_bad_commit_and_skips_the_broken_one(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    before = repo_state(repo)
    reports = tmp_path / "reports"
    runs_log = tmp_path / "runs.log"
    done = harness_bisect(
        *bisect_args(repo, shas[0], shas[BAD], scenario, reports), "--env", f"RUNS_LOG={runs_log}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # every run forked from one zygote the bisect started (the broken commit has no run)
    runs = runs_of(runs_log)
    assert runs and all(frozen > 0 for frozen, _ in runs)
    assert len({zygote for _, zygote in runs}) == 1
    assert_untouched(repo, before)
    assert f"first bad commit: {shas[K]} 'c{K}: change {K}' by Dev {K % 3}" in done.stdout
    assert f"step       {shas[S][:7]}" in done.stdout and "untestable -> skip" in done.stdout

    run_dir = only_report(reports)
    report = json.loads((run_dir / "bisect.json").read_text(encoding="utf-8"))
    assert report["status"] == "found" and report["exit_code"] == 0
    assert report["result"]["sha"] == shas[K]
    assert report["result"]["date"] == f"2026-01-01T00:{K:02d}:00+00:00"
    assert [s["sha"] for s in report["skipped"]] == [shas[S]]
    assert "SyntaxError: expected ':' (factory.py, line 5)" in report["skipped"][0]["detail"]
    assert report["candidates"] == BAD and report["expected_steps"] == math.ceil(math.log2(BAD))
    labels = [s["label"] for s in report["steps"]]
    # calibration: each bound once (a deterministic oracle)
    assert labels[:2] == ["good bound", "bad bound"]
    assert set(labels[2:]) == {"step"}
    assert report["bounds"]["old"]["record"]["verdict"] == "healthy"
    assert report["bounds"]["new"]["record"]["verdict"] == "regression"
    assert report["confidence"] >= 0.95 and report["flake"]["show_rate"] > 0.9
    steps = report["steps"][2:]
    assert steps[0]["sha"] == shas[S]
    tested = {s["sha"]: s["term"] for s in steps}
    assert tested[shas[K]] == "bad" and tested[shas[K - 1]] == "good"
    for step in steps:  # every verdict agrees with the history the repository was built with
        i = shas.index(step["sha"])
        want = "skip" if i == S else ("bad" if i >= K else "good")
        assert step["term"] == want, (i, step)
        if want == "bad":
            assert step["metrics"]["errors"][0] > 0
    # the skip and the confirming re-tests cost a few calls over the ideal
    assert report["oracle"]["bisect_calls"] <= report["expected_steps"] + 3
    assert report["oracle"]["calls"] == report["oracle"]["bisect_calls"] + 2
    assert {r["sha"]: r["runs"] for r in report["runs_per_commit"]}[shas[BAD]] == 1
    log = (run_dir / "bisect-log.txt").read_text(encoding="utf-8")
    assert log.count("# skip:") == 1 and f"# first bad commit: [{shas[K]}]" in log
    assert f"# harness runs: [{shas[BAD]}] 1/1 unhealthy" in log
    replay = _replay(repo, log)
    assert f"{shas[K]} is the first bad commit" in replay
    markdown = (run_dir / "bisect.md").read_text(encoding="utf-8")
    assert f"first bad commit: {shas[K]}" in markdown and "## Skipped" in markdown
    assert "## Runs per commit" in markdown
    clone = json.loads((run_dir / "step-config.json").read_text())["checkout"]
    assert not Path(clone).parent.exists()  # the private clone is gone
    _print_figures("regression", report)


def _replay(repo: Path, log: str) -> str:
    """``git bisect replay`` of the saved log, in a throwaway clone of ``repo``."""
    clone = repo.parent / "replay"
    _git(repo.parent, "clone", "--quiet", "--no-checkout", str(repo), str(clone))
    (repo.parent / "log.txt").write_text(log, encoding="utf-8")
    return _git(clone, "bisect", "replay", str(repo.parent / "log.txt"))


def _print_figures(name: str, report: dict[str, Any]) -> None:
    """The cost figures for the report (shown with ``pytest -s``)."""
    t = report["timings"]
    print(
        f"\n[{name}] oracle calls {report['oracle']['calls']} "
        f"(bisect {report['oracle']['bisect_calls']}) vs ceil(log2({report['candidates']}))"
        f" = {report['expected_steps']}; wall {t['wall_s']:.1f} s, scenario runs "
        f"{t['scenario_s']:.1f} s, overhead per step mean {t['overhead_mean_s']:.2f} s "
        f"max {t['overhead_max_s']:.2f} s, clone {t['clone_s']:.2f} s"
    )


def test_broken_fixed_names_the_fix_with_install_and_repeats(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    before = repo_state(repo)
    reports = tmp_path / "reports"
    # the install step litters the checkout; the driver must clean it before git moves on
    done = harness_bisect(
        *bisect_args(repo, shas[M - 3], "main", scenario, reports, terms=FIX_TERMS),
        "--repeat",
        "2",
        "--policy",
        "any",
        "--install",
        "mkdir -p build && touch build/installed .installed",
        "--install-always",  # no dependency files here: at every commit only when asked
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_untouched(repo, before)
    assert f"first fixed commit: {shas[M]} 'c{M}: change {M}'" in done.stdout
    report = json.loads((only_report(reports) / "bisect.json").read_text(encoding="utf-8"))
    assert report["search"] == "fix" and report["terms"] == {"old": "broken", "new": "fixed"}
    assert report["result"]["sha"] == shas[M]
    assert report["bounds"]["old"]["record"]["verdict"] == "regression"
    assert report["bounds"]["new"]["record"]["verdict"] == "healthy"
    for step in report["steps"]:
        i = shas.index(step["sha"])
        want = "skip" if i == S else ("fixed" if i >= M else "broken")
        assert step["term"] == want, (i, step)
        if want != "skip":
            assert step["runs"] == 2 and step["disagree"] == 0
            assert step["files"]["install_log"].endswith(".install.log")
            assert step["install"] == "ran"
    _print_figures("fix", report)


def test_wrong_bound_is_refused_naming_it(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    before = repo_state(repo)
    done = harness_bisect(
        *bisect_args(repo, shas[K + 1], shas[BAD], scenario, tmp_path / "reports"),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness bisect: error: --good ")
    assert (
        f"--good {shas[K + 1][:7]} should be healthy but the oracle found a regression" in lines[0]
    )
    measured = "(2/2 runs unhealthy; errors 2,2, retries 0,0, CLOSE_WAIT growth 0,0; errors 2 > 0)"
    assert measured in lines[0]
    assert "--bad" not in lines[0]  # the bad bound was right
    assert_untouched(repo, before)
    report = json.loads((only_report(tmp_path / "reports") / "bisect.json").read_text())
    assert report["status"] == "bad-bounds" and report["exit_code"] == 2


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_step_cleans_up_and_exits_128_plus_signal(
    signum: int, code: int, repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    before = repo_state(repo)
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "bisect",
            *map(str, bisect_args(repo, shas[0], shas[BAD], scenario, reports)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        steps = until(
            lambda: _running_step(reports, proc), what="a step's oracle running", timeout_s=120
        )
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, out + err
    assert (
        err.strip().splitlines()[-1] == "harness bisect: interrupted; the repository is unchanged"
    )
    assert_untouched(repo, before)
    run_dir = steps.parent
    report = json.loads((run_dir / "bisect.json").read_text(encoding="utf-8"))
    assert report["status"] == "interrupted" and report["exit_code"] == code
    assert report["message"] == f"interrupted by {signal.Signals(signum).name}"
    # it stopped inside a step: that step's oracle log exists, its record never got written
    assert len(list(steps.glob("*.check.log"))) == len(list(steps.glob("*.step.json"))) + 1
    clone = json.loads((run_dir / "step-config.json").read_text())["checkout"]
    assert not Path(clone).parent.exists()
    marks = (str(run_dir), clone)
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(mark in " ".join(p.info["cmdline"] or ()) for mark in marks)
    ]
    assert leftovers == []


def _running_step(reports: Path, proc: subprocess.Popen[str]) -> Path | None:
    """The steps folder once a ``git bisect run`` step (not a bound) has its oracle process
    running, the call that takes about a second; None before."""
    assert proc.poll() is None, proc.communicate()
    for steps in reports.glob("bisect-*/steps"):
        for log in steps.glob("*.check.log"):
            stem = log.name.split(".")[0]
            if int(stem[:3]) < 3 or (steps / f"{stem}.step.json").exists():
                continue  # a calibration call (the first two), or a finished step
            json_arg = str(steps / f"{stem}.check.json")  # the oracle's --json argument
            if any(json_arg in (p.info["cmdline"] or ()) for p in psutil.process_iter(["cmdline"])):
                return steps
    return None


REVISION_ORACLE = """\
import pathlib, sys
args = sys.argv[1:]
notes = pathlib.Path(args[args.index("--root") + 1]) / "NOTES.md"
sys.exit(1 if int(notes.read_text().split()[1]) < {fix} else 0)
"""


def test_failed_install_skips_and_only_skipped_commits_left_exits_1(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    # the user is in the middle of a bisect of their own: it must survive untouched
    _git(repo, "bisect", "start", "--no-checkout", shas[10], shas[1])
    before = repo_state(repo)
    assert "refs/bisect/bad" in before["refs"]
    reports = tmp_path / "reports"
    # what judges a commit does not matter here (the real oracle has its own tests): this
    # one reads the revision from NOTES.md, broken before the fix M, fixed from it on
    oracle = tmp_path / "revision_oracle.py"
    oracle.write_text(REVISION_ORACLE.format(fix=M), encoding="utf-8")
    done = harness_bisect(
        *bisect_args(repo, shas[6], shas[11], scenario, reports, terms=FIX_TERMS),
        "--install",
        f"! grep -q 'revision {M}' NOTES.md",
        "--install-always",  # the install fails on a file no dependency list names
        *("--oracle", f"{sys.executable} {oracle}"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert_untouched(repo, before, own_bisect=True)
    report = json.loads((only_report(reports) / "bisect.json").read_text(encoding="utf-8"))
    assert report["status"] == "skipped" and report["result"] is None
    assert {c["sha"] for c in report["possible"]} == {shas[M], shas[M + 1]}
    assert report["skipped"] == [
        {
            "sha": shas[M],
            "short": shas[M][:7],
            "subject": f"c{M}: change {M}",
            "detail": "install command exited 1",
        }
    ]
    assert done.stdout.splitlines()[-1].startswith(
        "no single first fixed commit: only untestable (skipped) commits are left; it is one of "
    )


# --- bad input: exit 2, one line, nothing written -------------------------------------------


def _request(repo: Path, scenario: Path, tmp_path: Path, old: str, new: str) -> BisectRequest:
    return BisectRequest(
        repo=repo,
        old_ref=old,
        new_ref=new,
        terms=REGRESSION_TERMS,
        scenario=scenario,
        factory=FACTORY,
        report_dir=tmp_path / "reports",
        oracle=("false",),
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not-a-repo", "--repo '{tmp}/plain': not a git repository"),
        ("unknown-ref", "--bad 'no-such-branch': no such commit in {repo}"),
        ("not-ancestor", "--good '{c6}' is not an ancestor of --bad '{c2}'"),
        ("same", "--good 'main' and --bad '{c11}' are the same commit"),
    ],
)
def test_bad_input_raises_before_anything_is_written(
    case: str, message: str, repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    before = repo_state(repo)
    (tmp_path / "plain").mkdir()
    target, old, new = {
        "not-a-repo": (tmp_path / "plain", shas[0], shas[1]),
        "unknown-ref": (repo, shas[0], "no-such-branch"),
        "not-ancestor": (repo, shas[6], shas[2]),
        "same": (repo, "main", shas[11]),
    }[case]
    with pytest.raises(BisectInputError) as info:
        run_bisect(_request(target, scenario, tmp_path, old, new), out=sys.stdout)
    assert str(info.value).startswith(
        message.format(tmp=tmp_path, repo=repo, c6=shas[6], c2=shas[2], c11=shas[11])
    )
    assert not (tmp_path / "reports").exists()
    assert_untouched(repo, before)


def test_scenario_errors_are_bad_input(repo: Path, shas: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read the file"):
        run_bisect(_request(repo, missing, tmp_path, shas[0], shas[1]), out=sys.stdout)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("version: 1\nsession:\n  turns: -1\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"invalid\.yaml:3: key 'session\.turns'"):
        run_bisect(_request(repo, invalid, tmp_path, shas[0], shas[1]), out=sys.stdout)
    assert not (tmp_path / "reports").exists()


def test_cli_bad_input_is_one_line_exit_2(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    done = harness_bisect(
        *bisect_args(repo, "v9.9", shas[3], scenario, tmp_path / "reports"),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"harness bisect: error: --good 'v9.9': no such commit in {repo}; "
        "pass a commit sha, branch or tag\n"
    )
    mixed = harness_bisect(
        "--repo",
        repo,
        "--good",
        shas[0],
        "--fixed",
        shas[3],
        "--scenario",
        scenario,
        "--factory",
        FACTORY,
        timeout=60,
    )
    assert mixed.returncode == 2
    assert mixed.stderr == (
        "harness bisect: error: give either --good REF --bad REF (find the "
        "first bad commit) or --broken REF --fixed REF (find the first "
        "fixed commit)\n"
    )


def test_bad_env_and_confidence_are_one_line_usage_errors(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    base = bisect_args(repo, shas[0], shas[3], scenario, tmp_path / "reports")
    env = harness_bisect(*base, "--env", "NO_EQUALS_SIGN", timeout=60)
    assert env.returncode == 2
    assert env.stderr == (
        "harness bisect: error: --env argument 1: not KEY=VALUE (its text is not shown); "
        "pass e.g. --env HOME=/tmp/home\n"
    )
    confidence = harness_bisect(*base, "--confidence", "1.5", timeout=60)
    assert confidence.returncode == 2
    assert confidence.stderr.splitlines()[-1] == (
        "harness bisect: error: argument --confidence: '1.5' is not a probability between 0.5 and 1"
    )
    assert not (tmp_path / "reports").exists()


# --- the driver with a fast oracle: merges, shallow clones, submodules ------------------------

STATE_ORACLE = """\
import pathlib, sys
args = sys.argv[1:]
root = pathlib.Path(args[args.index("--root") + 1])
state = next(p for p in (root / "STATE", root / "sub" / "STATE") if p.is_file())
sys.exit({"healthy": 0, "regression": 1, "untestable": 125}[state.read_text().strip()])
"""


def _commit(repo: Path, message: str, **files: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    env = {
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "CI",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
    }
    _git(repo, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message, env=env)
    return _git(repo, "rev-parse", "HEAD").strip()


def _new_repo(path: Path) -> Path:
    path.mkdir()
    _git(path, "init", "--quiet", "--initial-branch=main")
    return path


def _state_oracle(tmp_path: Path, prefix: str = "") -> tuple[Path, Path]:
    """(the STATE oracle's script, preceded by ``prefix``; a scenario it ignores)."""
    oracle = tmp_path / "state_oracle.py"
    oracle.write_text(prefix + STATE_ORACLE, encoding="utf-8")
    (tmp_path / "s.yaml").write_text("version: 1\n", encoding="utf-8")
    return oracle, tmp_path / "s.yaml"


def state_bisect(
    tmp_path: Path, repo: Path, old: str, new: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``harness bisect`` of ``repo`` from ``old`` to ``new`` with the STATE oracle, then
    ``args``; its result and its report folder."""
    oracle, scenario = _state_oracle(tmp_path)
    reports = tmp_path / "reports"
    done = harness_bisect(
        *bisect_args(repo, old, new, scenario, reports, factory="unused:f"),
        *("--oracle", f"{sys.executable} {oracle}", *args),
        timeout=120,
    )
    return done, reports


def add_submodule(repo: Path, source: Path, name: str = "vendored") -> None:
    """Add the local repository ``source`` to ``repo`` as submodule ``name``."""
    allow = ("-c", "protocol.file.allow=always")  # git refuses file:// submodules otherwise
    _git(repo, *allow, "submodule", "add", "--quiet", str(source), name)


def _fast_bisect(tmp_path: Path, repo: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    oracle, _ = _state_oracle(tmp_path)
    out = io.StringIO()
    reports = tmp_path / "reports"
    request = request_from(
        build_parser().parse_args(
            [
                "bisect",
                "--repo",
                str(repo),
                "--scenario",
                str(tmp_path / "s.yaml"),
                "--factory",
                "unused:f",
                "--oracle",
                f"{sys.executable} {oracle}",
                "--report-dir",
                str(reports),
                *args,
            ]
        )
    )
    code = run_bisect(request, out=out)
    report = json.loads((only_report(reports) / "bisect.json").read_text(encoding="utf-8"))
    return code, report, out.getvalue()


def test_first_parent_ignores_a_side_branch_based_before_the_regression(tmp_path: Path) -> None:
    """main: a - r (regression) - b - f (fix) - merge(side) - d; side, from a: s1 - s2
    (healthy: it predates the regression). Hunting the fix, the side commits read fixed."""
    repo = _new_repo(tmp_path / "repo")
    _commit(repo, "a", STATE="healthy")
    _git(repo, "branch", "side")
    r = _commit(repo, "r", STATE="regression")
    _commit(repo, "b", B="b")
    f = _commit(repo, "f", STATE="healthy")
    _git(repo, "checkout", "--quiet", "side")
    _commit(repo, "s1", S1="s1")
    _commit(repo, "s2", S2="s2")
    _git(repo, "checkout", "--quiet", "main")
    _git(repo, "merge", "--quiet", "--no-ff", "--no-edit", "side")
    d = _commit(repo, "d", D="d")
    code, report, out = _fast_bisect(tmp_path, repo, "--broken", r, "--fixed", d, "--first-parent")
    assert code == 0, out
    assert report["result"]["sha"] == f and report["first_parent"] is True
    assert report["candidates"] == 4  # b, f, the merge, d: not s1, s2
    assert all(s["subject"] not in ("s1", "s2") for s in report["steps"])
    assert "'--first-parent'" in _log(tmp_path)


def _log(tmp_path: Path) -> str:
    return (only_report(tmp_path / "reports") / "bisect-log.txt").read_text(encoding="utf-8")


def test_shallow_clone_without_the_bound_is_one_line_bad_input(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "full")
    shas = [_commit(repo, f"c{i}", STATE="healthy" if i < 3 else "regression") for i in range(6)]
    shallow = tmp_path / "shallow"
    _git(tmp_path, "clone", "--quiet", "--depth", "2", f"file://{repo}", str(shallow))
    (tmp_path / "x.yaml").write_text("version: 1\n")  # the scenario is resolved first
    done = harness_bisect(
        *bisect_args(shallow, shas[0], "HEAD", tmp_path / "x.yaml", tmp_path / "reports"),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"harness bisect: error: --good {shas[0]!r}: not in {shallow}, a shallow clone whose "
        "history is cut short; run `git fetch --unshallow` (or `--deepen N`) there, then retry\n"
    )
    assert not (tmp_path / "reports").exists()


def test_submodules_are_checked_out_at_every_commit(tmp_path: Path) -> None:
    """The superproject only moves its submodule; the state lives in the submodule."""
    sub = _new_repo(tmp_path / "sub")
    states = ["healthy", "healthy", "healthy", "regression", "regression", "regression"]
    sub_shas = [_commit(sub, f"sub {i}", STATE=s) for i, s in enumerate(states)]
    repo = _new_repo(tmp_path / "repo")
    add_submodule(repo, sub, "sub")
    shas = []
    for i, sub_sha in enumerate(sub_shas):
        _git(repo / "sub", "checkout", "--quiet", sub_sha)
        shas.append(_commit(repo, f"bump sub to {i}"))
    before = _git(repo, "status", "--porcelain", "--untracked-files=all")
    code, report, out = _fast_bisect(tmp_path, repo, "--good", shas[0], "--bad", shas[-1])
    assert code == 0, out
    assert report["result"]["sha"] == shas[3]
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == before == ""
    assert _git(repo / "sub", "rev-parse", "HEAD").strip() == sub_shas[-1]


def test_install_runs_with_the_checker_environment_and_env_reaches_every_run(
    tmp_path: Path, scenario: Path
) -> None:
    """Each commit pins a local dependency (``vendor/gwdep.py``) that must be installed into
    the bisect's private virtualenv at every commit (no dependency file says it changed:
    ``--install-always``); importing the factory needs ``--env GATEWAY_HOME``."""
    repo = _new_repo(tmp_path / "repo")
    shas = []
    for i, mutate in enumerate([False, False, True, True]):
        shas.append(
            _commit(
                repo,
                f"c{i}",
                **{
                    "vendor/gwdep.py": f"MUTATE = {mutate}\n",
                    "gateway/__init__.py": "",
                    "gateway/factory.py": DEP_FACTORY,
                },
            )
        )
    venv = _checker_venv(tmp_path / "venv")
    wrong = tmp_path / "wrong-bin"
    wrong.mkdir()
    (wrong / "python").write_text("#!/bin/sh\necho wrong python >&2\nexit 3\n", encoding="utf-8")
    (wrong / "python").chmod(0o755)
    install = (
        'python -c "import shutil, sysconfig; '
        "shutil.copy('vendor/gwdep.py', sysconfig.get_paths()['purelib'])\" "
        '&& echo "$VIRTUAL_ENV|$HARNESS_PYTHON"'
    )
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "harness",
            "bisect",
            *map(str, bisect_args(repo, shas[0], shas[-1], scenario, reports)),
            "--install",
            install,
            "--env",
            f"GATEWAY_HOME={tmp_path}/home",
            "--env",
            "UNUSED=a=b",
            "--install-always",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "PATH": f"{wrong}{os.pathsep}/usr/bin{os.pathsep}/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_report(reports)
    report = json.loads((run_dir / "bisect.json").read_text(encoding="utf-8"))
    assert report["result"]["sha"] == shas[2]
    # written redacted (harness.redact); the runs got the values: the factory's import needs it
    assert report["env"] == {"GATEWAY_HOME": "<redacted>", "UNUSED": "<redacted>"}
    install_log = (run_dir / report["steps"][0]["files"]["install_log"]).read_text()
    private = Path(install_log.split("|")[0])  # not the checker's own venv: the bisect's
    assert private.name == "venv" and private.parent.name.startswith("harness-bisect-")
    assert install_log == f"{private}|{private}/bin/python\n"
    assert not private.exists()  # removed at the end
    assert not list((venv / "lib").glob("python3*/site-packages/gwdep.py"))  # never touched


DEP_FACTORY = '''"""A factory whose behaviour comes from an installed dependency."""
import os
from typing import Any

import gwdep
import openai

HOME = os.environ["GATEWAY_HOME"]  # like a project whose import needs settings


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    if gwdep.MUTATE and "http_client" not in client_kwargs:
        client_kwargs["http_client"] = openai.DefaultHttpxClient()
    return openai.OpenAI(**(client_kwargs if gwdep.MUTATE else dict(client_kwargs)))
'''


PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def _checker_venv(path: Path) -> Path:
    """A virtualenv (no pip) that sees this interpreter's packages through a .pth file."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = subprocess.run(
        [str(path / "bin" / "python"), "-c", PURELIB],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "outer.pth").write_text(f"{here}\n", encoding="utf-8")
    return path


# --- terminal output ----------------------------------------------------------------------


def _state_repo(tmp_path: Path) -> tuple[list[str], list[str]]:
    """The module's history (K, S, BAD) judged by the STATE oracle: the terminal's progress
    and wording do not depend on what judges a commit, and the real oracle has its own test."""
    repo = _new_repo(tmp_path / "repo")
    states = ["healthy" if i < K else "regression" for i in range(BAD + 1)]
    states[S] = "untestable"
    shas = [_commit(repo, f"c{i}", STATE=state) for i, state in enumerate(states)]
    # each run lasts a moment, as a real one does, so the live region redraws during it
    oracle, scenario = _state_oracle(tmp_path, "import time; time.sleep(0.5)\n")
    argv = [sys.executable, "-m", "harness", "bisect", "--repo", str(repo), "--good", shas[0],
            "--bad", shas[BAD], "--scenario", str(scenario), "--factory", "unused:f",
            "--oracle", f"{sys.executable} {oracle}"]  # fmt: skip
    return shas, argv


def test_on_a_tty_bisect_shows_live_progress_and_quiet_prints_the_conclusion(
    tmp_path: Path,
) -> None:
    shas, argv = _state_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    code, out = run_in_pty(
        [*argv, "--report-dir", str(tmp_path / "tty")], {**env, "TERM": "xterm"}, columns=100
    )
    assert code == 0, out
    text = ANSI.sub("", out)
    drawn = ANSI.sub("", re.sub(r"\x1b\[[0-9]*[AK]", "\n", out)).replace("\r", "")
    assert max(len(line) for line in drawn.split("\n")) <= 100, out  # a 100-column terminal
    assert "\x1b[?25l" in out  # the live region is drawn
    assert "running: good bound " in text and "running: step " in text
    assert "0/" in text and " oracle runs" in text and "1 untestable" in text
    # the plain lines and the conclusion still reach the terminal
    assert f"step       {shas[S][:7]}" in text and "untestable -> skip" in text
    conclusion = f"first bad commit: {shas[K]} 'c{K}' by Dev"
    assert conclusion in text
    quiet = subprocess.run(
        [*argv, "--report-dir", str(tmp_path / "q"), "--quiet"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.count("\n") == 1 and quiet.stdout.startswith(conclusion)
    assert quiet.stderr == ""


def test_json_prints_only_the_report(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo")
    shas = [_commit(repo, f"c{i}", STATE="healthy" if i < 3 else "regression") for i in range(6)]
    done, reports = state_bisect(tmp_path, repo, shas[0], shas[5], "--json")
    assert (done.returncode, done.stderr) == (0, "")
    report = json.loads(done.stdout)  # the whole of stdout: no progress or conclusion lines
    assert done.stdout == (only_report(reports) / "bisect.json").read_text(encoding="utf-8")
    assert (report["status"], report["result"]["sha"]) == ("found", shas[3])
