"""Every subcommand, in the order ``harness --help`` lists them, imported only when used.

The table holds each command's name and one-line help (its module is named after it), so
``harness --help`` and a run of one command import only that command's module: ``harness
check`` (the bisect oracle, run once per step) skips the bisect driver, the report renderers
and the rest. A module builds its :class:`~harness.commands.base.Command` with
:func:`command`, which takes the help from here.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
from collections.abc import Callable
from dataclasses import dataclass

from harness.commands.base import Command

__all__ = ["LISTED", "Listed", "all_commands", "command", "load"]


@dataclass(frozen=True)
class Listed:
    """A subcommand as ``--help`` lists it."""

    name: str
    help: str

    @property
    def module(self) -> str:
        """Its module under ``harness.commands``: the name, with ``_`` after a keyword."""
        return f"{self.name}_" if keyword.iskeyword(self.name) else self.name


LISTED: tuple[Listed, ...] = (
    Listed("run", "run one scenario against one variant or factory"),
    Listed("regress", "run every scenario across its variants"),
    Listed("check", "bisect oracle: exit 0 healthy, 1 regression, 125 skip"),
    Listed("bisect", "find the commit that introduced or fixed a regression"),
    Listed("shrink", "shrink a scenario to the smallest one that still catches a factory"),
    Listed(
        "watch", "show a running process's TCP sockets per endpoint over time (CLOSE_WAIT leaks)"
    ),
    Listed("import", "turn a trace of LLM calls into a scenario"),
    Listed("serve", "run the mock OpenAI server standalone"),
    Listed("validate", "check scenario files without running them"),
    Listed("scenarios", "list the bundled scenarios and the variants each judges"),
    Listed("report", "re-render reports from a saved results.json, or merge several"),
    Listed("compare", "compare two results.json files; exit 1 if worse"),
)
_BY_NAME = {listed.name: listed for listed in LISTED}


def command(
    name: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    main: Callable[[argparse.Namespace], int],
    usage_exit: int = 2,
) -> Command:
    """The command ``name`` as its module defines it, with the help listed here."""
    return Command(name, _BY_NAME[name].help, add_arguments, main, usage_exit)


def load(listed: Listed) -> Command:
    """Import the command's module and return its ``COMMAND``."""
    found: Command = importlib.import_module(f"harness.commands.{listed.module}").COMMAND
    return found


def all_commands() -> tuple[Command, ...]:
    """Every command, each module imported."""
    return tuple(load(listed) for listed in LISTED)
