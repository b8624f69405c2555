"""Every subcommand, in the order ``harness --help`` lists them."""

from __future__ import annotations

from harness.commands import (
    bisect,
    check,
    compare,
    import_,
    regress,
    report,
    run,
    scenarios,
    serve,
    shrink,
    validate,
    watch,
)
from harness.commands.base import Command

__all__ = ["COMMANDS"]

COMMANDS: tuple[Command, ...] = tuple(
    module.COMMAND
    for module in (
        run,
        regress,
        check,
        bisect,
        shrink,
        watch,
        import_,
        serve,
        validate,
        scenarios,
        report,
        compare,
    )
)
