"""The harness's one exception tree.

::

    HarnessError                 base; every error the harness raises on purpose
    +-- UsageError               bad input from the user: CLI exit code 2
    |   +-- ScenarioError        a scenario file is invalid (names file, line and key)
    |   +-- FactoryError         a factory spec cannot be resolved or imported
    |   +-- BisectInputError     a bisect argument is wrong (repo, refs, bounds)
    |   +-- TraceError           a trace to import is invalid (names file and line or entry)
    +-- GitError                 a git command failed; the message keeps git's own cause line
    +-- WorkerError              a worker process failed in a way the harness cannot score
    +-- RunCancelled             a run was stopped from outside (Ctrl-C in the parent)

Third-party errors (yaml, psutil, git, openai) are translated at the boundary with
``raise X(...) from exc``; the CLI prints ``str(exc)`` on one line and never a traceback.
"""

from __future__ import annotations

__all__ = [
    "BisectInputError",
    "FactoryError",
    "GitError",
    "HarnessError",
    "RunCancelled",
    "ScenarioError",
    "TraceError",
    "UsageError",
    "WorkerError",
]


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class UsageError(HarnessError):
    """Bad input or usage; the CLI exits with code 2."""


class ScenarioError(UsageError):
    """An invalid scenario file.

    ``str(err)`` is one line: ``FILE:LINE: key 'a.b': what is wrong; what is allowed``.
    """

    def __init__(self, path: str, line: int, key: str, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = f"{path}:{line}" if line > 0 else path
        prefix = f"key {key!r}: " if key else ""
        super().__init__(f"{where}: {prefix}{message}")


class FactoryError(UsageError):
    """A factory spec that cannot be resolved, imported or called."""


class BisectInputError(UsageError):
    """A bisect argument that is wrong: not a repository, unknown ref, bad bounds."""


class TraceError(UsageError):
    """A trace ``harness import`` cannot read.

    ``str(err)`` is one line: ``FILE:LINE: what is wrong; what to do`` (JSON Lines), or
    ``FILE: entry PATH: ...`` (HAR, OTLP JSON: ``log.entries[3]``).
    """

    def __init__(self, path: str, where: int | str, message: str) -> None:
        self.path = path
        self.where = where
        self.message = message
        if isinstance(where, int):
            prefix = f"{path}:{where}" if where > 0 else path
        else:
            prefix = f"{path}: entry {where}" if where else path
        super().__init__(f"{prefix}: {message}")


class GitError(HarnessError):
    """A git command failed (clone, checkout, submodules, ``git bisect``): ``bisect`` exits 3.

    ``str(err)`` names the action, the directory, git's exit status and git's own cause
    (its ``fatal:``/``error:`` lines, e.g. ``Could not resolve host: ...``)."""


class WorkerError(HarnessError):
    """A worker process failed in a way that yields no result."""


class RunCancelled(HarnessError):
    """A run was cancelled before it finished; it has no result to score."""
