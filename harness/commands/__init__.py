"""Every subcommand of the command line: one module each, one :class:`Command` value each.

:data:`COMMANDS` lists them in the order ``harness --help`` shows them.
"""

from __future__ import annotations

from harness.commands import bisect, check, compare, regress, report, run, serve, validate
from harness.commands.base import Command

__all__ = ["COMMANDS", "Command"]

COMMANDS: tuple[Command, ...] = tuple(
    module.COMMAND for module in (run, regress, check, bisect, serve, validate, report, compare)
)
