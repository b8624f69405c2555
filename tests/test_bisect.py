"""The bisect driver against a real git repository whose factory regresses, breaks, and heals.

The module builds one repository (``build_repo``) of 34 commits and copies it per test:

=========  ============================================================================
c0..c9     healthy factory: a fresh OpenAI client per call, the caller's dict untouched
c10 (K)    the regression: the factory plants one shared HTTP client in the caller's dict
c13 (S)    a syntax error (not importable; git's first midpoint for c0..c26, so tested)
c14..c26   still mutating
c27 (M)    the fix: the factory copies the dict before adding its client
c28..c33   healthy
=========  ============================================================================

End-to-end tests run ``python -m harness bisect`` with the real ``harness check`` oracle and the
real openai SDK against the mock server on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness import bisect_git as g
from harness.bisect import BisectRequest, run_bisect
from harness.bisect_report import expected_steps, overheads, progress_line, render_markdown
from harness.bisect_step import (
    CheckMetrics,
    StepRecord,
    bisect_exit,
    disagreeing,
    read_check,
    term_of,
)
from harness.errors import BisectInputError, ScenarioError

N_COMMITS, K, S, M = 34, 10, 13, 27
FACTORY = "gateway/factory.py:create_openai_client"

HEALTHY = '''"""Gateway client factory, revision {i}."""
from typing import Any

import openai


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    return openai.OpenAI(**dict(client_kwargs))
'''

MUTATING = '''"""Gateway client factory, revision {i}: one keep-alive client for everything."""
from typing import Any

import openai


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = openai.DefaultHttpxClient()
    return openai.OpenAI(**client_kwargs)
'''

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
    # the fixture's own sanity: the broken commit is git's first pick, so it gets tested
    first = _git(root / "repo", "rev-list", "--bisect", shas[26], f"^{shas[0]}").strip()
    assert first == shas[S]
    return root / "repo", shas


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
    done = harness_bisect(
        "--repo",
        repo,
        "--good",
        shas[0],
        "--bad",
        shas[26],
        "--scenario",
        scenario,
        "--factory",
        FACTORY,
        "--report-dir",
        reports,
    )
    assert done.returncode == 0, done.stdout + done.stderr
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
    assert report["candidates"] == 26 and report["expected_steps"] == math.ceil(math.log2(26))
    labels = [s["label"] for s in report["steps"]]
    assert labels[:2] == ["good bound", "bad bound"] and set(labels[2:]) == {"step"}
    assert report["bounds"]["old"]["record"]["verdict"] == "healthy"
    assert report["bounds"]["new"]["record"]["verdict"] == "regression"
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
    # one skip costs about one extra oracle call over the ideal
    assert report["oracle"]["bisect_calls"] <= report["expected_steps"] + 2
    assert report["oracle"]["calls"] == report["oracle"]["bisect_calls"] + 2
    assert (run_dir / "bisect-log.txt").read_text(encoding="utf-8").count("# skip:") == 1
    assert f"# first bad commit: [{shas[K]}]" in (run_dir / "bisect-log.txt").read_text()
    markdown = (run_dir / "bisect.md").read_text(encoding="utf-8")
    assert f"first bad commit: {shas[K]}" in markdown and "## Skipped" in markdown
    clone = json.loads((run_dir / "step-config.json").read_text())["checkout"]
    assert not Path(clone).parent.exists()  # the private clone is gone
    _print_figures("regression", report)


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
        "--repo",
        repo,
        "--broken",
        shas[K],
        "--fixed",
        "main",
        "--scenario",
        scenario,
        "--factory",
        FACTORY,
        "--report-dir",
        reports,
        "--repeat",
        "2",
        "--policy",
        "any",
        "--install",
        "mkdir -p build && touch build/installed .installed",
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
    _print_figures("fix", report)


def test_wrong_bound_is_refused_naming_it(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    before = repo_state(repo)
    done = harness_bisect(
        "--repo",
        repo,
        "--good",
        shas[K + 1],
        "--bad",
        shas[26],
        "--scenario",
        scenario,
        "--factory",
        FACTORY,
        "--report-dir",
        tmp_path / "reports",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness bisect: error: --good ")
    assert (
        f"--good {shas[K + 1][:7]} should be healthy but the oracle found it regression" in lines[0]
    )
    assert "errors 2, retries 0, CLOSE_WAIT growth 0; errors 2 > 0)" in lines[0]
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
            "--repo",
            str(repo),
            "--good",
            shas[0],
            "--bad",
            shas[26],
            "--scenario",
            str(scenario),
            "--factory",
            FACTORY,
            "--report-dir",
            str(reports),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        steps = _wait_for_running_step(reports, proc)
        time.sleep(0.1)  # inside the oracle call, which takes about a second
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


def _wait_for_running_step(reports: Path, proc: subprocess.Popen[str]) -> Path:
    """Wait until a ``git bisect run`` step (not a bound) has started its oracle."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for steps in reports.glob("bisect-*/steps"):
            running = [
                p
                for p in steps.glob("*.check.log")
                if int(p.name[:3]) >= 3
                and not list(steps.glob(f"{p.name.split('.')[0]}.step.json"))
            ]
            if running:
                return steps
        time.sleep(0.05)
    raise AssertionError("no bisect step started within 120 s")


def test_failed_install_skips_and_only_skipped_commits_left_exits_1(
    repo: Path, shas: list[str], scenario: Path, tmp_path: Path
) -> None:
    # the user is in the middle of a bisect of their own: it must survive untouched
    _git(repo, "bisect", "start", "--no-checkout", shas[30], shas[2])
    before = repo_state(repo)
    assert "refs/bisect/bad" in before["refs"]
    reports = tmp_path / "reports"
    done = harness_bisect(
        "--repo",
        repo,
        "--broken",
        shas[20],
        "--fixed",
        shas[33],
        "--scenario",
        scenario,
        "--factory",
        FACTORY,
        "--report-dir",
        reports,
        "--install",
        f"! grep -q 'revision {M}' NOTES.md",
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
        terms=g.REGRESSION_TERMS,
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
        ("not-ancestor", "--good '{c20}' is not an ancestor of --bad '{c5}'"),
        ("same", "--good 'main' and --bad '{c33}' are the same commit"),
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
        "not-ancestor": (repo, shas[20], shas[5]),
        "same": (repo, "main", shas[33]),
    }[case]
    with pytest.raises(BisectInputError) as info:
        run_bisect(_request(target, scenario, tmp_path, old, new), out=sys.stdout)
    assert str(info.value).startswith(
        message.format(tmp=tmp_path, repo=repo, c20=shas[20], c5=shas[5], c33=shas[33])
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
        "--repo",
        repo,
        "--good",
        "v9.9",
        "--bad",
        shas[3],
        "--scenario",
        scenario,
        "--factory",
        FACTORY,
        "--report-dir",
        tmp_path / "reports",
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


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "terms", "term", "code"),
    [
        ("healthy", g.REGRESSION_TERMS, "good", 0),
        ("regression", g.REGRESSION_TERMS, "bad", 1),
        ("healthy", g.FIX_TERMS, "fixed", 1),  # healthy is the NEW term when hunting a fix
        ("regression", g.FIX_TERMS, "broken", 0),
        ("untestable", g.REGRESSION_TERMS, "skip", 125),
        ("untestable", g.FIX_TERMS, "skip", 125),
        ("error", g.FIX_TERMS, "abort", 255),
    ],
)
def test_verdicts_map_to_git_bisect_run_exit_codes(
    word: Any, terms: g.Terms, term: str, code: int
) -> None:
    assert term_of(word, terms) == term
    assert bisect_exit(term, terms) == code


LOG_FOUND = """\
git bisect start '--term-old=broken' '--term-new=fixed' 'abc' 'def'
# fixed: [ff0f0243a15f46e8da603b386253b7e748a15cb1] c2
git bisect fixed ff0f0243a15f46e8da603b386253b7e748a15cb1
# first fixed commit: [ff0f0243a15f46e8da603b386253b7e748a15cb1] c2
"""

LOG_SKIPPED = """\
# skip: [274c725b9c8c9e837877f5e7ba6d13eb0b3ef628] c5
git bisect skip 274c725b9c8c9e837877f5e7ba6d13eb0b3ef628
# only skipped commits left to test
# possible first bad commit: [c147d23ebe55f3ffb72bd986dedac20df7f28963] c7
# possible first bad commit: [274c725b9c8c9e837877f5e7ba6d13eb0b3ef628] c5
"""


def test_parse_bisect_log() -> None:
    assert g.parse_bisect_log(LOG_FOUND, g.FIX_TERMS) == g.BisectOutcome(
        kind="found", sha="ff0f0243a15f46e8da603b386253b7e748a15cb1"
    )
    assert g.parse_bisect_log(LOG_SKIPPED, g.REGRESSION_TERMS) == g.BisectOutcome(
        kind="skipped",
        candidates=(
            "c147d23ebe55f3ffb72bd986dedac20df7f28963",
            "274c725b9c8c9e837877f5e7ba6d13eb0b3ef628",
        ),
    )
    assert g.parse_bisect_log(LOG_FOUND, g.REGRESSION_TERMS).kind == "unfinished"
    assert g.parse_bisect_log("", g.REGRESSION_TERMS) == g.BisectOutcome(kind="unfinished")


def _check_doc(healthy: list[bool], statuses: list[str]) -> dict[str, Any]:
    runs = [
        {"status": s, "errors": 0 if h else 9, "retries": 1, "close_wait_growth": 2, "wall_s": 0.5}
        for h, s in zip(healthy, statuses, strict=True)
    ]
    verdicts = [{"healthy": h, "reasons": [] if h else ["errors 9 > 0"]} for h in healthy]
    return {"command": "check", "entries": [{"runs": runs, "verdicts": verdicts}]}


def test_read_check_and_disagreeing_runs() -> None:
    metrics = read_check(
        _check_doc(
            [False, True, False, False], ["completed", "completed", "completed", "untestable"]
        )
    )
    assert metrics == CheckMetrics(
        statuses=("completed", "completed", "completed", "untestable"),
        healthy=(False, True, False, False),
        errors=(9, 0, 9, 9),
        retries=(1, 1, 1, 1),
        close_wait_growth=(2, 2, 2, 2),
        scenario_s=2.0,
        reasons=("errors 9 > 0",),
    )
    assert disagreeing(metrics, "regression") == 1  # the untestable run does not vote
    assert disagreeing(metrics, "healthy") == 2
    assert disagreeing(metrics, "untestable") == 0
    assert read_check({"entries": []}) == CheckMetrics()


def _record(index: int, started: float, step_s: float, scenario_s: float) -> StepRecord:
    return StepRecord(
        index=index,
        label="step",
        sha="a" * 40,
        short="aaaaaaa",
        subject="c1: change | 1",
        oracle_exit=1,
        verdict="regression",
        term="bad",
        bisect_exit=1,
        disagree=1,
        metrics=CheckMetrics(
            statuses=("completed", "completed"),
            healthy=(False, True),
            errors=(3, 0),
            retries=(0, 0),
            close_wait_growth=(1, 0),
            scenario_s=scenario_s,
            reasons=("errors 3 > 0",),
        ),
        install_s=0.0,
        oracle_s=step_s,
        step_s=step_s,
        started=started,
        finished=started + step_s,
        files={"check_json": "steps/001-aaaaaaa.check.json"},
    )


def test_records_round_trip_and_format() -> None:
    record = _record(1, 100.0, 2.0, 1.5)
    assert StepRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert progress_line(record) == (
        "step       aaaaaaa  c1: change | 1                            regression -> bad  "
        "errors 3,0 retries 0,0 CLOSE_WAIT growth 1,0  disagree 1/2  (2.0 s)"
    )
    later = _record(2, 102.5, 3.0, 1.0)  # 0.5 s between steps + 2.0 s beyond the runs
    assert overheads([record, later]) == [2.5]
    assert [expected_steps(n) for n in (1, 2, 3, 26, 32, 33)] == [0, 1, 2, 5, 5, 6]


def test_markdown_escapes_and_lists_everything() -> None:
    record = _record(3, 100.0, 2.0, 1.5).to_dict()
    report = {
        "id": "bisect-x",
        "message": "first bad commit: abc",
        "search": "regression",
        "bounds": {
            "old": {"option": "--good", "ref": "v1", "sha": "1" * 40},
            "new": {"option": "--bad", "ref": "v2", "sha": "2" * 40},
        },
        "candidates": 5,
        "repo": "/r",
        "scenario": "/s.yaml",
        "factory": FACTORY,
        "repeat": 2,
        "policy": "any",
        "install": None,
        "status": "found",
        "exit_code": 0,
        "steps": [record],
        "skipped": [{"short": "bbbbbbb", "subject": "wip", "detail": "bad"}],
        "oracle": {"calls": 3, "bisect_calls": 1, "runs": 6},
        "expected_steps": 3,
        "timings": {
            "wall_s": 9.0,
            "clone_s": 0.1,
            "bounds_s": 4.0,
            "bisect_s": 4.5,
            "scenario_s": 3.0,
            "overhead_mean_s": 1.25,
            "overhead_max_s": 2.0,
        },
    }
    text = render_markdown(report)
    assert (
        "| 3 | step | `aaaaaaa` | c1: change \\| 1 | regression | bad | 3,0 | 0,0 | 1,0 "
        "| 1/2 | 2.00 |" in text
    )
    assert "- `bbbbbbb` wip: bad" in text
    assert "- oracle calls: 3 (1 inside git bisect, 6 scenario runs); ceil(log2(5)) = 3" in text
