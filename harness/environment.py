"""The environment fingerprint recorded with every run: interpreter, SDK and HTTP stack."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Final

__all__ = ["PACKAGES", "fingerprint"]

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
