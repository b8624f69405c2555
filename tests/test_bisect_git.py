"""Bisecting a real project's repository: a submodule whose URL is dead, git's own cause in
every git error (exit 3), a working tree with uncommitted changes, and the counted runs
printed before the model's estimates. Real git repositories in tmp_path, a fast oracle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_bisect import (
    _commit,
    _fast_bisect,
    _git,
    _new_repo,
    add_submodule,
    only_report,
    repo_state,
    state_bisect,
)

from harness.bisect.git import cause
from harness.bisect.model import Observed
from harness.bisect.render import rates_words

STATES = ["healthy", "healthy", "healthy", "regression", "regression", "regression"]


def _repo_with_dead_submodule(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A superproject whose first commit adds submodule ``vendored`` from a local path that
    is deleted afterwards; the superproject's own STATE file decides every commit."""
    sub = _new_repo(tmp_path / "vendored-src")
    _commit(sub, "vendored 1", README="vendored\n")
    repo = _new_repo(tmp_path / "repo")
    add_submodule(repo, sub)
    shas = [_commit(repo, f"c{i}", STATE=s, **{"NOTES.md": f"{i}\n"}) for i, s in enumerate(STATES)]
    shutil.rmtree(sub)  # the URL is dead from now on: nothing can fetch it
    return repo, sub, shas


def _dead_cause(sub: Path) -> str:
    return (
        f"fatal: repository '{sub}' does not exist; "
        f"fatal: clone of '{sub}' into submodule path '{{clone}}/vendored' failed; "
        "Failed to clone 'vendored' a second time, aborting"
    )


def test_cause_keeps_gits_fatal_line_and_its_last_words() -> None:
    stderr = (
        "Cloning into '/tmp/c/vendor'...\n"
        "fatal: unable to access 'https://git.example.invalid/x/': Could not resolve host: "
        "git.example.invalid\n"
        "fatal: clone of 'https://git.example.invalid/x' into submodule path '/tmp/c/vendor' "
        "failed\n"
        "Failed to clone 'vendor' a second time, aborting\n"
    )
    assert cause(stderr) == (
        "fatal: unable to access 'https://git.example.invalid/x/': Could not resolve host: "
        "git.example.invalid; fatal: clone of 'https://git.example.invalid/x' into submodule "
        "path '/tmp/c/vendor' failed; Failed to clone 'vendor' a second time, aborting"
    )
    assert cause("error: pathspec 'x' did not match\n") == "error: pathspec 'x' did not match"
    assert cause("") == "(no message)"


def test_an_unreachable_submodule_is_a_warning_and_the_bisect_goes_on(tmp_path: Path) -> None:
    repo, sub, shas = _repo_with_dead_submodule(tmp_path)
    before = repo_state(repo)
    code, report, out = _fast_bisect(tmp_path, repo, "--good", shas[0], "--bad", shas[-1])
    assert code == 0, out
    assert report["result"]["sha"] == shas[3] and report["submodules"] == "auto"
    [failure] = report["unfetched_submodules"]
    clone = failure["cause"].split("into submodule path '")[1].split("/vendored'")[0]
    assert failure == {
        "name": "vendored",
        "path": "vendored",
        "url": str(sub),
        "cause": _dead_cause(sub).format(clone=clone),
    }
    warning = (
        f"warning: submodule 'vendored' ({sub}) could not be fetched; testing "
        f"{shas[0][:12]} without it: {failure['cause']}"
    )
    assert report["warnings"] == [warning]
    assert out.count("could not be fetched") == 1  # tried once, not at every commit
    assert warning in out.splitlines()
    markdown = (only_report(tmp_path / "reports") / "bisect.md").read_text(encoding="utf-8")
    assert f"> {warning}" in markdown
    assert f"- submodule `vendored` ({sub}) could not be fetched; tested without it:" in markdown
    assert repo_state(repo) == before


def test_submodules_require_makes_it_an_error_exit_3_with_gits_cause(tmp_path: Path) -> None:
    repo, sub, shas = _repo_with_dead_submodule(tmp_path)
    done, reports = state_bisect(tmp_path, repo, shas[0], shas[-1], "--submodules", "require")
    assert done.returncode == 3, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    clone = line.split(" in ")[1].split(" (exit")[0]
    assert line == (
        f"harness bisect: error: git failed to check out submodule 'vendored' ({sub}) of "
        f"{shas[0][:12]} in {clone} (exit 1): " + _dead_cause(sub).format(clone=clone)
    )
    report = json.loads((only_report(reports) / "bisect.json").read_text(encoding="utf-8"))
    assert (report["status"], report["exit_code"]) == ("git-error", 3)
    assert not Path(clone).exists()  # the private clone is removed on this path too


def test_submodules_skip_fetches_nothing_and_warns_nothing(tmp_path: Path) -> None:
    repo, _, shas = _repo_with_dead_submodule(tmp_path)
    args = ("--good", shas[0], "--bad", shas[-1], "--submodules", "skip")
    code, report, out = _fast_bisect(tmp_path, repo, *args)
    assert code == 0, out
    assert report["result"]["sha"] == shas[3]
    assert (report["warnings"], report["unfetched_submodules"]) == ([], [])
    assert "could not be fetched" not in out


def test_uncommitted_changes_get_one_line_first(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo")
    shas = [_commit(repo, f"c{i}", STATE=s, **{"NOTES.md": f"{i}\n"}) for i, s in enumerate(STATES)]
    (repo / "NOTES.md").write_text("edited, not committed\n", encoding="utf-8")
    (repo / "STATE").write_text("healthy\n", encoding="utf-8")
    _git(repo, "add", "STATE")  # staged counts too
    (repo / "untracked.txt").write_text("not tracked: not counted\n", encoding="utf-8")
    before = repo_state(repo)
    code, report, out = _fast_bisect(tmp_path, repo, "--good", shas[0], "--bad", shas[-1])
    assert code == 0, out
    note = (
        f"note: 2 tracked files in {repo} have uncommitted changes; only committed history "
        "is tested (commit them to test them)"
    )
    assert out.splitlines()[0] == note and out.count("have uncommitted changes") == 1
    assert report["warnings"] == [note]
    markdown = (only_report(tmp_path / "reports") / "bisect.md").read_text(encoding="utf-8")
    assert markdown.splitlines()[2] == f"> {note}"
    assert repo_state(repo) == before  # `git status` refreshed no index


def test_a_clean_tree_with_untracked_files_gets_no_note(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo")
    shas = [_commit(repo, f"c{i}", STATE=s) for i, s in enumerate(STATES)]
    (repo / "untracked.txt").write_text("new\n", encoding="utf-8")
    code, report, out = _fast_bisect(tmp_path, repo, "--good", shas[0], "--bad", shas[-1])
    assert (code, report["warnings"]) == (0, [])
    assert out.startswith("bisecting 5 commits:")


def test_the_conclusion_prints_counted_runs_before_the_models_estimates(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo")
    shas = [_commit(repo, f"c{i}", STATE=s) for i, s in enumerate(STATES)]
    code, report, out = _fast_bisect(tmp_path, repo, "--good", shas[0], "--bad", shas[-1])
    assert code == 0, out
    index = {sha: i for i, sha in enumerate(shas)}
    buggy = [s for s in report["steps"] if index[s["sha"]] >= 3]
    clean = [s for s in report["steps"] if index[s["sha"]] < 3]
    seen = report["flake"]["observed"]
    # a deterministic oracle: every run on a commit with the regression showed it
    assert seen == {
        "buggy_shown": len(buggy),
        "buggy_runs": len(buggy),
        "clean_shown": 0,
        "clean_runs": len(clean),
    }
    show = report["flake"]["show_rate"]
    last = out.splitlines()[-1]
    assert last.endswith(
        f"; observed: the regression showed in {len(buggy)} of {len(buggy)} runs on commits "
        f"that have it and in 0 of {len(clean)} on commits that do not; estimated (model): "
        f"it shows in {show:.0%} of runs on a commit that has it"
    ), last
    markdown = (only_report(tmp_path / "reports") / "bisect.md").read_text(encoding="utf-8")
    observed_at = markdown.index(f"- observed: the regression showed in {len(buggy)} of ")
    assert observed_at < markdown.index("- estimated by the model, not observed: ")


def test_rates_words_reads_the_issue_case() -> None:
    """4 of 4 and 0 of 1 runs: the counts come first, the percentages are labelled."""
    assert rates_words(Observed(4, 4, 0, 1), 0.96, 0.01) == (
        "observed: the regression showed in 4 of 4 runs on commits that have it and in 0 of 1 "
        "on commits that do not; estimated (model): it shows in 96% of runs on a commit that "
        "has it and in 1% on one that does not"
    )
    assert rates_words(Observed(3, 5, 0, 2), 0.7, 0.001).endswith("on a commit that has it")


def test_a_git_failure_past_validation_exits_3_with_gits_cause(tmp_path: Path) -> None:
    """A repository missing an object the good bound needs (a damaged or partial clone):
    its checkout fails in the private clone; exit 3 (the documented code), git's own words."""
    repo = _new_repo(tmp_path / "repo")
    shas = [_commit(repo, f"c{i}", STATE=s, **{"NOTES.md": f"{i}\n"}) for i, s in enumerate(STATES)]
    blob = _git(repo, "rev-parse", f"{shas[0]}:NOTES.md").strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    done, reports = state_bisect(tmp_path, repo, shas[0], shas[-1])
    assert done.returncode == 3, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    clone = line.split(" in ")[1].split(" (exit")[0]
    said = f"harness bisect: error: git failed to check out {shas[0][:12]} in {clone} (exit "
    assert line.startswith(said), line
    # git's own lines (their wording varies by version; the missing blob's id is git's)
    cause = line.split("): ", 1)[1]
    assert cause.startswith(("error: ", "fatal: ")) and blob in cause, line
    report = json.loads((only_report(reports) / "bisect.json").read_text(encoding="utf-8"))
    assert (report["status"], report["exit_code"]) == ("git-error", 3)
    assert not Path(clone).exists()
