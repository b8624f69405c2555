"""``harness serve``: run the mock OpenAI server standalone until SIGINT or SIGTERM.

The first line on stdout is the base URL (``http://127.0.0.1:PORT/v1``), flushed at once, so a
caller can start the process with ``--port 0`` and read where it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import threading

from harness.commands._common import scenario_file
from harness.commands.registry import command
from harness.interrupts import Interrupted, handling, in_slices
from harness.mockserver.calllog import DEFAULT_CALL_LOG_LIMIT
from harness.mockserver.server import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT_S,
    MockServer,
    check_loopback,
)
from harness.scenario import ServerSpec, load_scenario

__all__ = ["COMMAND"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="scenario (file or bundled name) whose `server:` section to serve "
        "(default: a plain server)",
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="TCP port; 0 (the default) picks a free one"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (127.0.0.0/8 or ::1); default 127.0.0.1",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open sockets beyond this get 503 and a FIN (default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        metavar="SECONDS",
        help="a request not complete this long after its first byte gets 408"
        f" (default {DEFAULT_REQUEST_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--call-log-limit",
        type=int,
        default=DEFAULT_CALL_LOG_LIMIT,
        metavar="N",
        help=f"calls listed in the stats, the most recent (default {DEFAULT_CALL_LOG_LIMIT})",
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; use 0..65535")
    return value


def main(ns: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop. Bad input raises UsageError (exit 2)."""
    host = check_loopback(ns.host)
    # Only the server: section is served; the session's planned duration does not apply.
    spec = (
        load_scenario(scenario_file(ns.scenario), max_duration_s=math.inf).server
        if ns.scenario
        else ServerSpec()
    )
    server = MockServer(
        spec,
        host=host,
        port=ns.port,
        call_log_limit=ns.call_log_limit,
        max_connections=ns.max_connections,
        request_timeout_s=ns.request_timeout,
    )
    with handling(), server:
        print(server.base_url, flush=True)
        # SIGINT/SIGTERM raise Interrupted here: the way a standalone server is meant to
        # stop, so a clean exit 0, not an interruption.
        with contextlib.suppress(Interrupted):
            in_slices(threading.Event().wait)
    return 0


COMMAND = command("serve", add_arguments, main)
