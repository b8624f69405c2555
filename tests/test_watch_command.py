"""``harness watch`` as a real subprocess, on real child processes talking to a real mock server.

The leaky child keeps every keep-alive connection it opens, so each sits in CLOSE_WAIT once
the server reaps it with a FIN; the healthy one closes them. Tests end a watch on what they
observe (a JSON line showing growth, a closed stdin), never on a fixed sleep, and assert
lower bounds only on counts that depend on timing.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from _tty import ANSI, run_in_pty
from _wait import DEADLINE_S, until

from harness.mockserver import MockServer
from harness.scenario import Keepalive, ServerSpec
from harness.watch import EXIT_CODES

CHILD = Path(__file__).with_name("_leaky_client.py")
SECRET = "sk-watch-" + secrets.token_hex(12)
ENV = {**os.environ, "OPENAI_API_KEY": SECRET, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def server() -> Iterator[MockServer]:
    # The server reaps a connection idle for 100 ms with a FIN.
    with MockServer(ServerSpec(keepalive=Keepalive(idle_timeout_ms=100, close="fin"))) as s:
        yield s


@contextmanager
def child(server: MockServer, mode: str, every_s: float = 0.1) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(server.port), mode, str(every_s)],
        stdin=subprocess.PIPE,
        env=ENV,
    )
    try:
        if mode == "leak":  # at least one socket leaked before any watch starts
            until(lambda: _close_wait(proc.pid) >= 1, what="the child's first CLOSE_WAIT")
        else:
            until(lambda: server.stats().connections >= 1, what="the child's first connection")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()


def _close_wait(pid: int) -> int:
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in connections if c.status == psutil.CONN_CLOSE_WAIT)


def watch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "watch", *args]


# Execs its arguments with SIGINT ignored (kept across exec), as a background job starts.
IGNORING_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); " \
    "os.execv(sys.argv[1], sys.argv[1:])"  # fmt: skip


@contextmanager
def watching(*args: str, ignore_sigint: bool = False) -> Iterator[subprocess.Popen[str]]:
    """``harness watch ARGS``, started with SIGINT ignored if ``ignore_sigint``."""
    shim = [sys.executable, "-c", IGNORING_SIGINT] if ignore_sigint else []
    proc = subprocess.Popen(
        [*shim, *watch_argv(*args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV,
    )  # fmt: skip
    killer = threading.Timer(DEADLINE_S, proc.kill)  # a hung watch must not hang the suite
    killer.start()
    try:
        yield proc
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def lines_until(proc: subprocess.Popen[str], done: Any) -> list[dict[str, Any]]:
    """Read JSON lines from ``proc`` until ``done(lines)`` is true."""
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    while not done(seen):
        line = proc.stdout.readline()
        assert line, f"watch ended early: {proc.wait()} {seen}"
        seen.append(json.loads(line))
    return seen


def grew(seen: list[dict[str, Any]]) -> bool:
    return len(seen) >= 2 and seen[-1]["close_wait"] >= seen[0]["close_wait"] + 3


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


@pytest.mark.parametrize(("sig", "word"), [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_the_leak_grows_and_a_signal_ends_the_watch_with_the_report(
    server: MockServer, tmp_path: Path, sig: int, word: str
) -> None:
    out = tmp_path / "watch"
    with child(server, "leak") as leaky:
        # SIGINT ignored, as in a background job: watch installs its own handler anyway.
        args = ("--pid", str(leaky.pid), "--interval", "200ms", "--max-growth", "2", "--over",
                "10m", "--out", str(out))  # fmt: skip
        with watching(*args, ignore_sigint=True) as proc:
            seen = lines_until(proc, grew)
            proc.send_signal(sig)
            rest, stderr = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == EXIT_CODES["crossed"], stderr
    assert f"ended: interrupted by {word}" in stderr
    assert "CLOSE_WAIT growth at most 2 within 10m: CROSSED at" in stderr
    assert stderr.rstrip().endswith(f"reports: {out}")
    every = seen + [json.loads(line) for line in rest.splitlines()]
    assert all(s["pid"] == leaky.pid for s in every)
    endpoint = f"127.0.0.1:{server.port}"
    assert every[-1]["endpoints"][endpoint]["close_wait"] == every[-1]["close_wait"]
    assert "max_growth" in every[-1]["crossed"]
    assert every[-1]["close_wait_growth"] >= 3
    saved = (out / "samples.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in saved] == every
    summary = (out / "summary.md").read_text()
    assert f"| {endpoint} |" in summary and "exit 1: a threshold was crossed" in summary
    html = (out / "report.html").read_text()
    assert f'data-variant="{endpoint}"' in html and "CLOSE_WAIT sockets per endpoint" in html
    no_secret(rest, stderr, summary, html, *saved)


def test_the_healthy_child_stays_flat_and_exits_0(server: MockServer) -> None:
    with child(server, "close") as healthy:
        done = subprocess.run(
            watch_argv("--pid", str(healthy.pid), "--interval", "200ms", "--duration", "2s",
                       "--max-close-wait", "0", "--max-growth", "0"),
            capture_output=True, text=True, env=ENV, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
    assert done.returncode == EXIT_CODES["ok"], done.stderr
    samples = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(samples) >= 2 and samples[-1]["t"] >= 2.0
    assert [s["close_wait"] for s in samples] == [0] * len(samples)
    assert server.stats().connections >= 3  # it did connect, and close, all along
    assert "exit 0: within thresholds" in done.stderr
    no_secret(done.stdout, done.stderr)


def test_thresholds_not_crossed_exit_0_on_the_leaky_child(server: MockServer) -> None:
    with child(server, "leak") as leaky:
        done = subprocess.run(
            watch_argv("--pid", str(leaky.pid), "--interval", "200ms", "--duration", "1s",
                       "--max-close-wait", "100000", "--json"),
            capture_output=True, text=True, env=ENV, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
    assert done.returncode == EXIT_CODES["ok"], done.stderr
    samples = [json.loads(line) for line in done.stdout.splitlines()]
    assert samples[-1]["close_wait"] >= 1 and all(s["crossed"] == [] for s in samples)


def test_the_process_ending_ends_the_watch_with_a_clear_line(server: MockServer) -> None:
    limits = ("--interval", "100ms", "--max-close-wait", "100000")
    with child(server, "leak") as leaky, watching("--pid", str(leaky.pid), *limits) as proc:
        lines_until(proc, lambda seen: len(seen) >= 2)
        assert leaky.stdin is not None
        leaky.stdin.close()  # the child exits; unreaped, it is a zombie: ended all the same
        _, stderr = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == EXIT_CODES["exited"], stderr
    assert f"ended: pid {leaky.pid} exited while watched" in stderr
    assert stderr.rstrip().endswith("exit 3: the process ended")


def test_a_terminal_shows_the_live_table(server: MockServer) -> None:
    with child(server, "leak") as leaky:
        code, out = run_in_pty(
            watch_argv("--pid", str(leaky.pid), "--interval", "200ms", "--duration", "1s",
                       "--max-close-wait", "0"),
            {**ENV, "TERM": "xterm"}, timeout=DEADLINE_S, columns=100,
        )  # fmt: skip
    text = ANSI.sub("", out)
    assert code == EXIT_CODES["crossed"], text
    assert "endpoint         ESTABLISHED  CLOSE_WAIT  other  CW peak  EST peak" in text
    assert f"127.0.0.1:{server.port}" in text and "{" not in text  # a table, not JSON
    assert "threshold CLOSE_WAIT at most 0: CROSSED at" in text
    no_secret(out)


def test_a_pid_that_does_not_exist_is_one_line_exit_2() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    done = subprocess.run(
        watch_argv("--pid", str(pid_max + 1)), capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert done.returncode == EXIT_CODES["usage"]
    assert done.stderr == (
        f"harness watch: error: no process with pid {pid_max + 1} (it may have ended);"
        " check the pid with `ps`\n"
    )
    assert done.stdout == ""


def _other_users_process() -> tuple[list[str], int] | None:
    """(argv prefix, pid): a watch that runs as a user who does not own ``pid``."""
    if os.geteuid() == 0:  # root sees everything: watch our own process as nobody instead
        setpriv = "/usr/bin/setpriv"
        if not Path(setpriv).exists():
            return None
        return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"], os.getpid()
    first = psutil.Process(1)
    return ([], 1) if first.uids().real != os.getuid() else None


def test_another_users_process_is_access_denied_exit_2() -> None:
    found = _other_users_process()
    if found is None:
        pytest.skip("no process of another user to watch here")
    prefix, pid = found
    done = subprocess.run(
        [*prefix, *watch_argv("--pid", str(pid))],
        capture_output=True, text=True, timeout=DEADLINE_S, cwd="/",
        env={**ENV, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    assert done.returncode == EXIT_CODES["usage"], done.stderr
    assert done.stderr == (
        f"harness watch: error: cannot see the sockets of pid {pid}: access denied (it belongs"
        " to another user); run watch as that user\n"
    )


def test_endpoint_filters_what_is_counted(server: MockServer) -> None:
    def run(endpoint: str, pid: int) -> tuple[int, list[dict[str, Any]]]:
        done = subprocess.run(
            watch_argv("--pid", str(pid), "--interval", "200ms", "--duration", "1s",
                       "--endpoint", endpoint, "--max-close-wait", "0"),
            capture_output=True, text=True, env=ENV, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]

    with child(server, "leak") as leaky:
        code, elsewhere = run("127.0.0.1:1", leaky.pid)  # no socket goes there
        assert code == EXIT_CODES["ok"]
        assert all(s["close_wait"] == 0 and s["endpoints"] == {} for s in elsewhere)
        code, there = run(f"*:{server.port}", leaky.pid)
    assert code == EXIT_CODES["crossed"]
    assert list(there[-1]["endpoints"]) == [f"127.0.0.1:{server.port}"]
    assert there[-1]["close_wait"] >= 1
