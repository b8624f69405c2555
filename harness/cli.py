"""The command line: one dispatcher over the commands :mod:`harness.commands.registry` lists.

Each subcommand is a :class:`~harness.commands.base.Command` (name, help, arguments, main, usage
exit code). This module turns the harness's own errors into one line on stderr and the
command's ``usage_exit`` (2; ``check`` 125), and SIGINT/SIGTERM into 130/143 after the
command's own cleanup (:mod:`harness.interrupts`); it never prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness.commands.base import Command
from harness.commands.registry import LISTED, load
from harness.errors import UsageError
from harness.interrupts import handling
from harness.processes import guard

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    usage_exit = 2  # a subcommand's parser takes its command's usage exit code

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(self.usage_exit, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command is listed, but only the one ``argv`` names
    (its first word not starting with ``-``) is imported and given its arguments; with no
    ``argv``, every command is."""
    parser = _Parser(
        prog="harness",
        description="Reproduce, compare and bisect connection-lifecycle bugs in LLM clients.",
    )
    subs = parser.add_subparsers(dest="name", required=True, parser_class=_Parser)
    named = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for listed in LISTED:
        sub = subs.add_parser(listed.name, help=listed.help, description=listed.help)
        if named is not None and listed.name != named:
            continue  # never chosen in this parse: not imported
        command = load(listed)
        sub.usage_exit = command.usage_exit
        command.add_arguments(sub)
        sub.set_defaults(command=command, command_parser=sub)
    return parser


def console() -> int:
    """The ``harness`` command and ``python -m harness``: :func:`main` behind
    :func:`harness.processes.guard`, so a harness started by :func:`harness.processes.spawn`
    (the bisect oracle, ``harness check``) dies with its parent, even one killed by SIGKILL,
    and leaves no worker behind. Started any other way, the guard does nothing."""
    guard()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    ns, extra = build_parser(args).parse_known_args(args)
    command: Command = ns.command
    if extra:  # reported by the subcommand's parser, so with its usage exit code (check: 125)
        ns.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    with handling() as caught:  # SIGTERM too ends the command through its Ctrl-C cleanup
        try:
            return command.main(ns)
        except UsageError as exc:
            print(f"harness {command.name}: error: {exc}", file=sys.stderr)
            return command.usage_exit
        except KeyboardInterrupt:
            print(f"harness {command.name}: interrupted", file=sys.stderr)
            return caught.exit_code
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as the standard tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
