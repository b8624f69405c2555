"""One zygote for a bisect's oracle calls (:mod:`harness.zygote`).

Each oracle call is its own ``harness check`` process, and on its own each would run its
worker in a fresh interpreter that spends most of a short step importing openai (about a
second of CPU; several on a busy machine). So the driver starts one zygote for the bisect
and hands each call of the default oracle a connection to it
(:meth:`harness.zygote.Zygote.share`, named in the call's environment): the call forks its
runs there when the zygote would start them as the call itself would (same interpreter and
environment, a checkout that shadows none of the modules it preloaded), and starts them
fresh otherwise. The zygote never imports the project's code, so no two commits meet in
it: each forked run imports the checkout as it is at that step.

An install command changes what an interpreter would import, so the zygote is ended before
each install; the call right after an install starts its run fresh, and the next call that
installs nothing starts a zygote again, on the private virtualenv's interpreter: a zygote
costs about what one fresh interpreter does, so it pays off from the second call it serves,
and ``--install-always`` never starts one. A custom ``--oracle`` gets no connection: it may
be any program.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from harness.environment import worker_env
from harness.errors import WorkerError
from harness.zygote import Zygote, usable

__all__ = ["OracleWorkers"]


class OracleWorkers:
    """The zygote the oracle calls fork from, started on first use; :meth:`stop` ends it
    (before an install), :meth:`close` for good."""

    def __init__(self, *, python: str, env: Mapping[str, str], root: Path, enabled: bool) -> None:
        # The environment a call's worker gets: the call's own (env), as the call derives it.
        self.python, self.env, self.root = python, worker_env(env), root
        self.enabled = enabled and usable()
        self._zygote: Zygote | None = None

    def start(self) -> None:
        """Start the zygote now (it imports while the caller goes on), if it is not running."""
        if self.enabled and self._zygote is None:
            self._zygote = Zygote(python=self.python, root=self.root, env=self.env).start()

    def share(self, *, installed: bool = False) -> socket.socket | None:
        """A connection for the next oracle call (the caller passes and then closes it), or
        None: the call starts its workers itself (also right after an install,
        ``installed``)."""
        if installed:
            return None
        self.start()
        if self._zygote is None:
            return None
        try:
            return self._zygote.share()
        except (OSError, WorkerError):  # it died: the calls go on without it
            self.stop()
            self.enabled = False
            return None

    def stop(self) -> None:
        """End the zygote and the runs forked from it; the next :meth:`share` starts another."""
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def close(self) -> None:
        self.stop()
        self.enabled = False
