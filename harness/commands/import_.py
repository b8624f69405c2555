"""``harness import TRACE``: a production timeline of LLM calls as a replayable scenario.

Reads a trace (JSON Lines, HAR or OTLP JSON; :mod:`harness.importer`), writes a commented
scenario with a ``session.timeline`` to ``-o FILE`` (or standard output) and says what it
did in one line. Exit 0, or 2 with one line naming the file and the line or entry for input
it cannot use; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from harness.commands._common import add_max_duration_argument, positive_number
from harness.commands.registry import command
from harness.errors import UsageError
from harness.importer import FORMATS, Imported, auto_compress, import_trace, read_trace
from harness.report.layout import atomic_write_text

# A common load balancer's idle timeout (AWS ALB's default); give the provider's own.
DEFAULT_IDLE_TIMEOUT_MS: Final = 60_000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", type=Path, metavar="TRACE", help="the trace file to import")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the scenario here (default: stdout)",
    )
    parser.add_argument(
        "--compress",
        type=positive_number("a number"),
        metavar="FACTOR",
        help="replay this many times faster (default: the idle timeout becomes 200 ms)",
    )
    parser.add_argument(
        "--idle-timeout-ms",
        type=positive_number("a number"),
        default=DEFAULT_IDLE_TIMEOUT_MS,
        metavar="MS",
        help="the provider's keep-alive idle timeout in the trace's time "
        f"(default: {DEFAULT_IDLE_TIMEOUT_MS:g})",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="", help="the trace's format (default: detected)"
    )
    parser.add_argument("--name", help="the scenario's name (default: the trace file's stem)")
    add_max_duration_argument(parser)


def main(ns: argparse.Namespace) -> int:
    output: Path | None = ns.output
    if output is not None:
        _check_output(output, ns.trace)
    trace = read_trace(ns.trace, ns.format)
    compress = ns.compress or auto_compress(ns.idle_timeout_ms)
    imported = import_trace(
        trace,
        compress=compress,
        idle_timeout_ms=ns.idle_timeout_ms,
        name=ns.name or ns.trace.stem,
        max_duration_s=ns.max_duration,
    )
    if output is None:
        sys.stdout.write(imported.text)
        print(_summary(imported, "<stdout>"), file=sys.stderr)
    else:
        atomic_write_text(output, imported.text)
        print(_summary(imported, str(output)))
    return 0


def _summary(imported: Imported, where: str) -> str:
    replay = imported.replay
    gaps = [g for g in replay.gaps() if g.trace_ms is not None]
    moved = sum(g.clamped for g in gaps)
    return (
        f"{where}: {len(replay.trace.calls)} calls in {len(replay.sessions)} sessions "
        f"({replay.trace.fmt}), {replay.compress:g}x faster, idle timeout "
        f"{replay.idle_timeout_ms:g} -> {replay.server_idle_ms:g} ms; "
        f"{sum(g.longer for g in gaps)} of {len(gaps)} gaps longer, {moved} moved to keep "
        "their side"
    )


def _check_output(output: Path, trace: Path) -> None:
    if output.exists() and trace.exists() and output.samefile(trace):
        raise UsageError(f"{output}: is the trace itself; write the scenario to another file")
    if not output.parent.is_dir():
        raise UsageError(f"{output}: its folder does not exist; create it or choose another -o")


COMMAND = command("import", add_arguments, main)
