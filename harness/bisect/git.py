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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.bisect.model import Commit, Terms
from harness.bisect.search import History
from harness.errors import BisectInputError, GitError

__all__ = [
    "SUBMODULE_MODES",
    "BisectOutcome",
    "SubmoduleFailure",
    "cause",
    "checkout",
    "commit_info",
    "common_dir",
    "dirty_files",
    "git",
    "git_env",
    "history",
    "is_ancestor",
    "make_clone",
    "parse_bisect_log",
    "resolve",
    "scrub",
    "tree_files",
    "write_log",
]

# Messages and log comments are parsed, so git must speak untranslated English.
_GIT_ENV: Mapping[str, str] = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}


def git_env() -> dict[str, str]:
    """The environment every git call runs with."""
    return {**os.environ, **_GIT_ENV}


def git(args: Sequence[str], *, cwd: Path, what: str) -> str:
    """Run ``git args`` in ``cwd``; return stdout. ``what`` names the action in errors;
    a failure raises :class:`GitError` carrying git's own cause (:func:`cause`)."""
    try:
        done = _probe(args, cwd=cwd)
    except OSError as exc:
        raise GitError(f"cannot run git to {what}: {exc}; install git") from exc
    if done.returncode != 0:
        raise GitError(
            f"git failed to {what} in {cwd} (exit {done.returncode}): {cause(done.stderr)}"
        )
    return done.stdout


def cause(stderr: str) -> str:
    """Git's reason in one line: its first ``fatal:``/``error:`` lines (where the cause is,
    e.g. ``Could not resolve host``), then its last line (what it gave up on)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "(no message)"
    said = [ln for ln in lines if ln.startswith(("fatal:", "error:"))][:2]
    return "; ".join(dict.fromkeys([*said, lines[-1]]))


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
        if is_shallow(repo):
            raise BisectInputError(
                f"{option} {ref!r}: not in {repo}, a shallow clone whose history is cut "
                "short; run `git fetch --unshallow` (or `--deepen N`) there, then retry"
            )
        raise BisectInputError(
            f"{option} {ref!r}: no such commit in {repo}; pass a commit sha, branch or tag"
        )
    return done.stdout.strip()


def is_shallow(repo: Path) -> bool:
    done = _probe(["rev-parse", "--is-shallow-repository"], cwd=repo)
    return done.stdout.strip() == "true"


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    done = _probe(["merge-base", "--is-ancestor", older, newer], cwd=repo)
    if done.returncode not in (0, 1):
        raise GitError(f"git merge-base failed in {repo}: {cause(done.stderr)}")
    return done.returncode == 0


def history(repo: Path, older: str, newer: str, *, first_parent: bool) -> History:
    """The candidates ``git bisect`` chooses from (``older..newer``), ancestors first."""
    out = git(
        [
            "rev-list",
            "--topo-order",
            "--reverse",
            "--parents",
            *(["--first-parent"] if first_parent else []),
            f"{older}..{newer}",
        ],
        cwd=repo,
        what="list the commits to bisect",
    )
    commits = []
    for line in out.splitlines():
        sha, *parents = line.split()
        commits.append((sha, parents[:1] if first_parent else parents))
    return History.from_parents(commits)


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


SUBMODULE_MODES = ("auto", "require", "skip")


@dataclass(frozen=True)
class SubmoduleFailure:
    """A submodule git could not fetch: named in the output and in the report."""

    name: str
    path: str
    url: str
    cause: str  # git's own words (:func:`cause`)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "path": self.path, "url": self.url, "cause": self.cause}


def checkout(
    clone: Path,
    sha: str,
    *,
    submodules: str = "auto",
    failed: Collection[SubmoduleFailure] = (),
) -> tuple[SubmoduleFailure, ...]:
    """Check out ``sha`` in the clone, and its submodules as ``submodules`` says: ``auto``
    fetches each one and returns those git could not fetch (``failed``, from earlier
    commits, are not tried again while their URL is the same); ``require`` raises
    :class:`GitError` on the first that fails; ``skip`` fetches none."""
    git(
        ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", sha],
        cwd=clone,
        what=f"check out {sha[:12]}",
    )
    if submodules == "skip" or not (clone / ".gitmodules").is_file():
        return ()
    known = {(f.name, f.url): f for f in failed}
    failures = []
    for name, path, url in _submodules(clone):
        if (name, url) in known:
            failures.append(known[(name, url)])
            continue
        # local submodule URLs are file:// transports, which git refuses unless allowed
        args = ["-c", "protocol.file.allow=always", "submodule", "update", "--init"]
        done = _probe([*args, "--recursive", "--force", "--quiet", "--", path], cwd=clone)
        if done.returncode == 0:
            continue
        if submodules == "require":
            raise GitError(
                f"git failed to check out submodule {name!r} ({url}) of {sha[:12]} in {clone} "
                f"(exit {done.returncode}): {cause(done.stderr)}"
            )
        failures.append(SubmoduleFailure(name, path, url, cause(done.stderr)))
    return tuple(failures)


def _submodules(clone: Path) -> list[tuple[str, str, str]]:
    """(name, path, url) of each submodule ``.gitmodules`` lists at the checked-out commit."""
    read = ["config", "--file", ".gitmodules", "--get-regexp", r"^submodule\..*\.(path|url)$"]
    done = _probe(read, cwd=clone)
    if done.returncode not in (0, 1):  # 1: no such key
        raise GitError(f"git failed to read .gitmodules in {clone}: {cause(done.stderr)}")
    paths: dict[str, str] = {}
    urls: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        name, _, kind = key.removeprefix("submodule.").rpartition(".")
        (paths if kind == "path" else urls)[name] = value
    return [(name, path, urls.get(name, "")) for name, path in paths.items()]


def scrub(clone: Path) -> None:
    """Undo whatever a step wrote into the checkout, so the next ``git checkout`` is clean."""
    git(["reset", "--quiet", "--hard"], cwd=clone, what="reset the checkout")
    git(["clean", "-ffdxq"], cwd=clone, what="clean the checkout")
    if (clone / ".gitmodules").is_file():
        git(
            [
                "submodule",
                "foreach",
                "--quiet",
                "--recursive",
                "git reset --quiet --hard && git clean -ffdxq",
            ],
            cwd=clone,
            what="clean the submodules",
        )


def tree_files(clone: Path) -> dict[str, str]:
    """Every file of the commit checked out in ``clone``: path -> blob id."""
    out = git(["ls-tree", "-r", "-z", "HEAD"], cwd=clone, what="list the files of the commit")
    files = {}
    for entry in out.split("\0"):
        meta, _, path = entry.partition("\t")
        if path:
            files[path] = meta.split()[-1]
    return files


def dirty_files(repo: Path) -> int:
    """How many tracked files have uncommitted changes (staged or not) in ``repo``'s working
    tree; read-only (``--no-optional-locks``: ``git status`` refreshes no index)."""
    out = git(
        ["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
        cwd=repo,
        what="read the working tree's status",
    )
    return len(out.splitlines())


def write_log(
    clone: Path,
    terms: Terms,
    bounds: tuple[str, str],
    marks: Sequence[tuple[str, str]],
    *,
    first_parent: bool,
) -> str:
    """Record ``marks`` ((term, sha), in order) with ``git bisect`` in the clone and return
    ``git bisect log``: a log ``git bisect replay`` accepts. ``bounds``: (old, new) shas."""
    old, new = bounds
    start = ["bisect", "start", "--no-checkout", f"--term-old={terms.old}"]
    start += [f"--term-new={terms.new}", *(["--first-parent"] if first_parent else [])]
    git([*start, new, old, "--"], cwd=clone, what="start git bisect")
    for term, sha in marks:
        done = _probe(["bisect", term, sha], cwd=clone)
        # exit 2 with this line: git could not narrow past untestable commits, as expected
        said = done.stdout + done.stderr
        if done.returncode != 0 and "only 'skip'ped commits left" not in said:
            raise GitError(f"git failed to mark {sha[:12]} {term} in {clone}: {cause(done.stderr)}")
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
