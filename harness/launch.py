"""How a worker starts: a :class:`Launcher` turns a job file into a running :class:`Handle`.

Two launchers exist: :class:`FreshInterpreter` (``python -m harness.worker JOB`` through
:func:`harness.processes.spawn`) and :class:`harness.zygote.InFolder` (a fork of a
pre-started interpreter in the run's folder, :meth:`harness.zygote.Zygote.at`). Both give
the same guarantees (the worker and all it starts die on every way out and with the
harness), so the runner only chooses which one serves a run (:func:`launcher_for`) and
otherwise treats them alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness.environment import worker_env
from harness.processes import Child, Handle, spawn

if TYPE_CHECKING:
    from harness.zygote import Zygote

__all__ = ["FreshInterpreter", "Launcher", "launcher_for"]


class Launcher(Protocol):
    """Starts workers."""

    def launch(self, job: Path, stderr: Path, pass_fds: Sequence[int] = ()) -> Handle:
        """Start the worker for ``job`` (a :class:`harness.messages.Job` file), its stderr
        written to ``stderr`` (created or truncated), each of ``pass_fds`` open in the worker
        under the same number; the worker's stdin and stdout are /dev/null."""
        ...


@dataclass(frozen=True)
class FreshInterpreter:
    """``python -m harness.worker JOB`` run by ``python`` in ``root`` with ``env``."""

    python: str
    root: Path
    env: Mapping[str, str]

    def launch(self, job: Path, stderr: Path, pass_fds: Sequence[int] = ()) -> Child:
        argv = [self.python, "-m", "harness.worker", str(job)]
        with open(stderr, "wb") as stream:  # the worker has its own copy once started
            return spawn(argv, cwd=self.root, env=self.env, stderr=stream, pass_fds=pass_fds)


def launcher_for(python: str, root: Path, zygote: Zygote | None) -> Launcher:
    """``zygote``, forking in ``root``, when it serves runs on ``python`` there with this
    process's worker environment (:func:`harness.environment.worker_env`), else a fresh
    interpreter."""
    env = worker_env(os.environ)
    if zygote is not None and zygote.serves(python=python, root=root, env=env):
        return zygote.at(root)
    return FreshInterpreter(python, root, env)
