"""The environment fingerprint recorded with every run: interpreter, SDK and HTTP stack."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = [
    "NO_TRUST_STORE",
    "PACKAGES",
    "ZYGOTE_FD_ENV",
    "fingerprint",
    "harness_env",
    "target_commit",
    "worker_env",
]

PACKAGES: Final = ("openai", "httpx", "httpx2", "httpcore", "httpcore2", "h11")
ABSENT: Final = "absent"
# A CA directory that holds no certificate and never will: OpenSSL reads a capath lazily.
NO_TRUST_STORE: Final = os.devnull
# The descriptor of a connection to a zygote that another process started and handed this
# one (harness.zygote.Zygote.share): read once by harness.zygote.workers_for, never a worker's.
ZYGOTE_FD_ENV: Final = "HARNESS_ZYGOTE_FD"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ABSENT


def fingerprint() -> dict[str, str]:
    """Versions of Python and :data:`PACKAGES` (``"absent"`` when not installed), OS, platform.

    ``seed`` is ``"none"``: nothing in the harness draws random numbers (call order, payloads
    and fault selection are fixed by the scenario), so there is no seed to replay.

    Read once per process (what it has imported cannot change under it): the zygote reads it
    before it forks, so a worker spends neither the metadata lookups nor ``platform``'s
    ``uname -p`` subprocess (5-6 ms of CPU a worker).
    """
    return dict(_fingerprint())


@functools.cache
def _fingerprint() -> dict[str, str]:
    data = {"python": platform.python_version(), "seed": "none"}
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


def harness_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with this harness's source first on PYTHONPATH, when it is a checkout.

    Child processes (workers, the bisect oracle) import this very harness, whatever
    interpreter or checkout they run in. An installed harness (a wheel's: its folder is a
    site-packages holding its .dist-info) is left off: its environment's interpreters find it
    there (the bisect's private venv through its path file), and that folder first on the path
    would put every package beside it ahead of the child's own (the harness's openai 3 ahead
    of the openai 2 a project installs into the private venv).
    """
    env = dict(base)
    if (source := _checkout()) is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH", "")) if p)
    return env


@functools.cache
def _checkout() -> str | None:
    """The folder holding this harness's package when it is a checkout; None when it is a
    site-packages (it holds the wheel's .dist-info). Looked up once: every run asks."""
    source = Path(__file__).resolve().parent.parent
    return None if any(source.glob("lifecycle_harness-*.dist-info")) else str(source)


def worker_env(base: Mapping[str, str]) -> dict[str, str]:
    """:func:`harness_env` for a worker: the same, with an empty TLS trust store.

    httpx and httpx2 load the CA bundle (``SSL_CERT_FILE``, certifi or the system file) into
    every client they build: 15-150 ms of CPU per client, which a gateway building a client
    per call pays once per call, more than the loopback call itself. A worker only ever
    speaks plain HTTP to 127.0.0.1 (anything else is refused at the socket layer), so it
    needs no trust store: ``SSL_CERT_DIR`` names an empty one (read lazily, so free) and
    ``SSL_CERT_FILE`` goes, which both stacks read before their default. A TLS connection,
    were one ever attempted, would fail to verify rather than succeed.

    ``PYTEST_CURRENT_TEST`` goes too: pytest changes it for every test, so a worker
    environment that kept it would differ from test to test, and the plugin's zygote (which
    serves only runs that would start the same way) would serve none but its first. So does
    :data:`ZYGOTE_FD_ENV`: the connection is its runner's, not the worker's.
    """
    env = harness_env(base)
    env.pop("SSL_CERT_FILE", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop(ZYGOTE_FD_ENV, None)
    env["SSL_CERT_DIR"] = NO_TRUST_STORE
    return env
