"""Git plumbing for the bisect driver.

Two kinds of calls live here. Read-only queries against the user's repository (resolve a ref,
ancestry, commit metadata) never write to it. Everything that changes state (checkout,
``git bisect``) runs in a private ``git clone --shared`` in a temporary directory: the clone
borrows the user's objects through ``objects/info/alternates`` and has its own HEAD, index,
refs, hooks and bisect state, so the user's working tree, branch, stash, ``refs/bisect/*``,
worktree list and any bisect session of their own are never touched, even if the driver is
killed with SIGKILL (all that is left then is a temporary directory).

:func:`parse_bisect_log` is pure: it reads the text of ``git bisect log``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import BisectInputError, HarnessError

__all__ = [
    "BisectOutcome",
    "Commit",
    "Terms",
    "git",
    "git_env",
    "parse_bisect_log",
]

# Messages and log comments are parsed, so git must speak untranslated English.
_GIT_ENV: Mapping[str, str] = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}


def git_env() -> dict[str, str]:
    """The environment every git call runs with."""
    return {**os.environ, **_GIT_ENV}


def git(args: Sequence[str], *, cwd: Path, what: str) -> str:
    """Run ``git args`` in ``cwd``; return stdout. ``what`` names the action in errors."""
    try:
        done = _probe(args, cwd=cwd)
    except OSError as exc:
        raise HarnessError(f"cannot run git to {what}: {exc}; install git") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise HarnessError(f"git failed to {what} in {cwd} (exit {done.returncode}): {last}")
    return done.stdout


def _probe(args: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a git query whose exit status is the answer."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )


@dataclass(frozen=True)
class Terms:
    """The two ``git bisect`` terms: ``old`` for the earlier state, ``new`` for the later."""

    old: str
    new: str

    @property
    def search(self) -> Literal["regression", "fix"]:
        return "fix" if self.new == "fixed" else "regression"


REGRESSION_TERMS = Terms(old="good", new="bad")
FIX_TERMS = Terms(old="broken", new="fixed")


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


# --- read-only queries on the user's repository -------------------------------------------


def common_dir(repo: Path) -> Path:
    """The repository's (common) git directory; BisectInputError when ``repo`` is none."""
    if not repo.is_dir():
        raise BisectInputError(f"--repo {str(repo)!r}: no such directory; pass a git checkout")
    done = _probe(["rev-parse", "--git-common-dir"], cwd=repo)
    if done.returncode != 0 or not done.stdout.strip():
        raise BisectInputError(
            f"--repo {str(repo)!r}: not a git repository; pass the checkout that holds the commits"
        )
    # printed relative to the working directory unless it lies elsewhere
    return (repo / done.stdout.strip()).resolve()


def resolve(repo: Path, ref: str, option: str) -> str:
    """The full sha of commit ``ref``; BisectInputError naming ``option`` when unknown."""
    done = _probe(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], cwd=repo
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise BisectInputError(
            f"{option} {ref!r}: no such commit in {repo}; pass a commit sha, branch or tag"
        )
    return done.stdout.strip()


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    done = _probe(["merge-base", "--is-ancestor", older, newer], cwd=repo)
    if done.returncode not in (0, 1):
        raise HarnessError(f"git merge-base failed in {repo}: {done.stderr.strip()}")
    return done.returncode == 0


def count_between(repo: Path, older: str, newer: str) -> int:
    """Commits reachable from ``newer`` but not ``older``: the candidates bisect chooses from."""
    return int(
        git(
            ["rev-list", "--count", f"{older}..{newer}"],
            cwd=repo,
            what="count the commits to bisect",
        )
    )


def commit_info(repo: Path, sha: str) -> Commit:
    out = git(
        ["show", "-s", "--format=%H%x00%h%x00%s%x00%an <%ae>%x00%aI", sha, "--"],
        cwd=repo,
        what=f"read commit {sha}",
    )
    full, short, subject, author, date = out.rstrip("\n").split("\x00")
    return Commit(sha=full, short=short, subject=subject, author=author, date=date)


# --- the private clone ----------------------------------------------------------------------


def make_clone(common_dir: Path, dest: Path) -> None:
    """A clone of ``common_dir`` at ``dest`` sharing its objects; nothing checked out yet."""
    git(
        ["clone", "--quiet", "--shared", "--no-checkout", "--", str(common_dir), str(dest)],
        cwd=dest.parent,
        what="make a private clone to bisect in",
    )


def checkout(clone: Path, sha: str) -> None:
    git(
        ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", sha],
        cwd=clone,
        what=f"check out {sha[:12]}",
    )


def scrub(clone: Path) -> None:
    """Undo whatever a step wrote into the checkout, so the next ``git checkout`` is clean."""
    git(["reset", "--quiet", "--hard"], cwd=clone, what="reset the checkout")
    git(["clean", "-ffdxq"], cwd=clone, what="clean the checkout")


def bisect_start(clone: Path, terms: Terms, old: str, new: str) -> str:
    return git(
        ["bisect", "start", f"--term-old={terms.old}", f"--term-new={terms.new}", new, old, "--"],
        cwd=clone,
        what="start git bisect",
    )


def bisect_log(clone: Path) -> str:
    return git(["bisect", "log"], cwd=clone, what="read the bisect log")


# --- reading the bisect log (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class BisectOutcome:
    """How ``git bisect`` ended: ``found`` one commit, only ``skipped`` ones left, or neither
    (``unfinished``: the run was aborted or interrupted)."""

    kind: Literal["found", "skipped", "unfinished"]
    sha: str = ""
    candidates: tuple[str, ...] = ()  # when kind == "skipped": any of these may be the one


_LOG_COMMENT = re.compile(r"^# (?P<what>[^:]+): \[(?P<sha>[0-9a-f]{7,64})\]")


def parse_bisect_log(text: str, terms: Terms) -> BisectOutcome:
    """Read the ``# first <new> commit`` or ``# possible first <new> commit`` lines."""
    found = f"first {terms.new} commit"
    possible = f"possible first {terms.new} commit"
    candidates: list[str] = []
    for line in text.splitlines():
        match = _LOG_COMMENT.match(line)
        if match is None:
            continue
        if match["what"] == found:
            return BisectOutcome(kind="found", sha=match["sha"])
        if match["what"] == possible:
            candidates.append(match["sha"])
    if candidates:
        return BisectOutcome(kind="skipped", candidates=tuple(candidates))
    return BisectOutcome(kind="unfinished")
