"""The command line: a dispatcher over subcommands, each in its own module.

Every subcommand module exposes ``add_arguments(parser)`` and ``main(ns) -> int`` (and may set
``USAGE_EXIT``). This module turns the harness's own errors into one line on stderr and exit
code 2 (``USAGE_EXIT`` where a module sets it), and SIGINT/SIGTERM into 130/143 after the
command's own cleanup (:mod:`harness.interrupts`); it never prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from harness.errors import UsageError
from harness.interrupts import handling

__all__ = ["main"]

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.commands.run", "run one scenario against one variant or factory"),
    "regress": ("harness.commands.regress", "run every scenario across its variants"),
    "check": ("harness.commands.check", "bisect oracle: exit 0 healthy, 1 regression, 125 skip"),
    "bisect": ("harness.bisect", "find the commit that introduced or fixed a regression"),
    "serve": ("harness.mockserver.serve", "run the mock OpenAI server standalone"),
    "validate": ("harness.commands.validate", "check scenario files without running them"),
    "report": ("harness.report.commands", "re-render reports from a saved results.json"),
    "compare": ("harness.report.compare", "compare two results.json files; exit 1 if worse"),
}


class _Parser(argparse.ArgumentParser):
    usage_exit = 2  # `check` uses 125: git bisect run would read 2 as "bad"

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(self.usage_exit, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description="Reproduce, compare and bisect connection-lifecycle bugs in LLM clients.",
    )
    subs = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subs.add_parser(name, help=help_text, description=help_text)
        sub.usage_exit = getattr(module, "USAGE_EXIT", 2)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    with handling() as caught:  # SIGTERM too ends the command through its Ctrl-C cleanup
        try:
            code: int = ns._module.main(ns)
        except UsageError as exc:
            print(f"harness {ns.command}: error: {exc}", file=sys.stderr)
            return int(getattr(ns._module, "USAGE_EXIT", 2))
        except KeyboardInterrupt:
            print(f"harness {ns.command}: interrupted", file=sys.stderr)
            return caught.exit_code
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as the standard tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return code
