"""``python -m harness serve`` as a real subprocess: URL on stdout, answers, clean exits."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

import harness.mockserver
from harness.mockserver import MockServer
from harness.scenario import ServerSpec

URL = re.compile(r"^http://127\.0\.0\.1:(\d+)/v1$")
SCENARIO = """\
version: 1
server:
  reply: {text: "served from a scenario", chunks: 2}
  faults:
    - {kind: http_error, status: 503, calls: [1]}
"""


@contextmanager
def harness_serve(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(60, proc.kill)  # a hung server must not hang the test run
    killer.start()
    try:
        yield proc
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_url_answers_and_exits_0_on_signal(tmp_path: Path, sig: int) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    with harness_serve("--scenario", str(scenario), "--port", "0") as proc:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline().strip()
        assert URL.match(line), line
        client = openai.OpenAI(api_key="test", base_url=line, max_retries=1)
        try:
            done = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "ping"}]
            )
        finally:
            client.close()
        assert done.choices[0].message.content == "served from a scenario"
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == ""
        assert proc.stderr.read() == ""


def test_bad_scenario_is_one_line_and_exit_2(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("version: 1\nserver:\n  latency_ms: -5\n")
    result = run_serve("--scenario", str(scenario))
    assert result.returncode == 2
    assert result.stdout == ""
    # the wording after the key belongs to harness.scenario; here: one line, file:line:key
    assert result.stderr.startswith(
        f"harness serve: error: {scenario}:3: key 'server.latency_ms': -5 is out of range"
    )
    assert result.stderr.count("\n") == 1


def test_missing_scenario_file_is_exit_2(tmp_path: Path) -> None:
    result = run_serve("--scenario", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "absent.yaml: no such file or directory, nor a bundled scenario" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.1"])
def test_non_loopback_host_is_refused(host: str) -> None:
    result = run_serve("--host", host)
    assert result.returncode == 2
    assert result.stderr == (
        f"harness serve: error: refusing to serve on {host!r}: the mock server binds to "
        "loopback only (127.0.0.0/8 or ::1); use 127.0.0.1\n"
    )


def test_port_in_use_is_exit_2() -> None:
    with MockServer(ServerSpec()) as server:
        result = run_serve("--port", str(server.port))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"harness serve: error: cannot listen on 127.0.0.1:{server.port}: "
    )
    assert result.stderr.count("\n") == 1


def test_package_exports_match_all() -> None:
    # The exports are imported on first use (the sans-IO modules import without the server);
    # submodules become package attributes once anything imports them; they are not exports.
    for name in harness.mockserver.__all__:
        getattr(harness.mockserver, name)
    public = {
        name
        for name, value in vars(harness.mockserver).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(harness.mockserver.__all__)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-connections", "0"), "max_connections 0 is below 1; use 1 or more"),
        (("--request-timeout", "-1"), "request timeout -1.0 s is not above 0"),
    ],
)
def test_bad_limits_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run_serve(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"harness serve: error: {message}\n"
