"""The environment fingerprint recorded with every run: interpreter, SDK and HTTP stack."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Final

__all__ = ["PACKAGES", "fingerprint", "target_commit"]

PACKAGES: Final = ("openai", "httpx", "httpx2", "httpcore", "httpcore2", "h11")
ABSENT: Final = "absent"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ABSENT


def fingerprint() -> dict[str, str]:
    """Versions of Python and :data:`PACKAGES` (``"absent"`` when not installed), OS, platform."""
    data = {"python": platform.python_version()}
    data.update({name: _version(name) for name in PACKAGES})
    data["os"] = f"{platform.system()} {platform.release()}"
    data["platform"] = platform.platform()
    return data


def target_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (the code under test), or None outside git."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git on this machine: the commit is simply not known
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
