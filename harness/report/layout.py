"""Where reports go and how they are written: run directories, atomic writes, ``latest``.

Layout under a reports root::

    root/
      <run-id>/results.json junit.xml summary.md report.html
      latest -> <run-id>       (a symlink; a text file naming the run where symlinks fail)

Every file is written to a temporary sibling and moved into place with ``os.replace``, so a
reader (a CI upload step, a browser, a second harness process) sees the old file or the new
one and never half of one, also when the harness is killed mid-write. The file gets the mode
any file the user creates gets (0644 under umask 022), not ``mkstemp``'s private 0600, and its
text passes :func:`harness.redact.scrub` first: no secret value from the environment is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import UsageError
from harness.redact import scrub

__all__ = [
    "LATEST",
    "append_step_summary",
    "atomic_write_text",
    "current_umask",
    "latest_run",
    "new_run_id",
    "run_dir",
    "run_id_problem",
    "run_stamp",
    "update_latest",
]

LATEST = "latest"
# A run id becomes a directory name: refuse anything that could climb out of the root.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run_stamp() -> str:
    """The current UTC time to the millisecond, as run ids and folders start: sorts by time,
    e.g. ``20261124T143000123Z``."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"


def new_run_id(command: str) -> str:
    """A run id that sorts by time: ``20261124T143000123Z-regress``."""
    return f"{run_stamp()}-{command}"


def run_id_problem(run_id: object) -> str | None:
    """Why ``run_id`` cannot name a directory inside a reports root, or None if it can."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id == LATEST:
        return (
            f"run id {run_id!r} cannot name a report directory; "
            "use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
        )
    return None


def run_dir(root: Path, run_id: str) -> Path:
    """Create (if needed) and return ``root/<run_id>``, never a folder outside ``root``."""
    problem = run_id_problem(run_id)
    if problem is not None:
        raise UsageError(problem)
    path = root / run_id
    if path.is_symlink():  # a link planted in the root could send the writes anywhere
        raise UsageError(f"{str(path)!r} is a symbolic link; remove it or pick another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create report directory {str(path)!r}: {exc.strerror}") from exc
    return path


def current_umask() -> int:
    """This process's umask, read without changing it where Linux says it (``os.umask`` sets
    it too, and a file another thread creates meanwhile would get the wrong mode)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)  # elsewhere: the brief window is at its most private
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, scrubbed of secret values: :func:`harness.redact.scrub`) to
    ``path`` through a temporary sibling and ``os.replace``; the mode honours the umask."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(scrub(text))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # The temp file is ours alone; removing it cannot hide anything. Re-raise the cause.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def latest_run(root: Path) -> str | None:
    """The run id ``root/latest`` names, or None when there is no ``latest`` yet."""
    link = root / LATEST
    if link.is_symlink():
        return Path(os.readlink(link)).name
    if link.is_file():
        return link.read_text(encoding="utf-8").strip() or None
    return None


def update_latest(root: Path, run_id: str) -> None:
    """Point ``root/latest`` at ``run_id`` unless it already names a newer run.

    Run ids sort by time, so re-rendering an old results.json into the same root leaves
    ``latest`` on the newest run. The link is relative, so the root can be moved or uploaded.
    """
    current = latest_run(root)
    if current is not None and current > run_id and (root / current).is_dir():
        return
    tmp = root / f".{LATEST}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(run_id, tmp, target_is_directory=True)
    except (OSError, NotImplementedError):
        # No symlinks here (some Windows setups, some mounted filesystems): name the run.
        atomic_write_text(root / LATEST, run_id + "\n")
        return
    os.replace(tmp, root / LATEST)


def append_step_summary(markdown: str, env: Mapping[str, str]) -> Path | None:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY`` when set; return that file or None.

    GitHub concatenates what every step appends, so this appends and never replaces.
    """
    target = env.get("GITHUB_STEP_SUMMARY", "")
    if not target:
        return None
    path = Path(target)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(scrub(markdown if markdown.endswith("\n") else markdown + "\n"))
    except OSError as exc:
        raise UsageError(
            f"cannot append to GITHUB_STEP_SUMMARY {target!r}: {exc.strerror}; "
            "unset it or point it at a writable file"
        ) from exc
    return path
