"""The one shape every subcommand has: a frozen :class:`Command` value.

A command module builds its arguments and runs; it knows nothing of the dispatcher. The CLI
(:mod:`harness.cli`) reads only these fields, so adding a command is adding its module and
one line to :data:`harness.commands.registry.LISTED`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Command"]


@dataclass(frozen=True)
class Command:
    """One subcommand.

    ``main(ns)`` returns the exit code. Bad input raises :class:`~harness.errors.UsageError`
    (or fails argparse), which the CLI turns into one line on stderr and ``usage_exit``:
    2, except for the bisect oracle ``check``, which must say 125 ("skip") to ``git bisect
    run``, never 2 ("bad").
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace], int]
    usage_exit: int = 2
