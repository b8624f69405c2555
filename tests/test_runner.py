"""run_one: a worker per run, the watchdog, crash and untestable statuses, measured facts."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _wait import gone, until

from harness.environment import harness_env, worker_env
from harness.errors import RunCancelled
from harness.messages import Call, Done, Failed, Refused, Sample, Untestable, WorkerLine
from harness.result import CallRecord, RunResult, ServerStats, SocketSample
from harness.runner import classify, run_one, watchdog_for
from harness.scenario import Scenario, load_scenario, parse_scenario
from harness.verdict import judge
from harness.zygote import Zygote

OPENAI_MAJOR = int(importlib.metadata.version("openai").split(".")[0])
DEADLINE_S = 30.0
CHECKOUT = Path(__file__).resolve().parent.parent  # bundled variants fork from `forks` here


def _scenario(tmp_path: Path, text: str, name: str = "s") -> Scenario:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return load_scenario(path)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# --- the watchdog bound ------------------------------------------------------------------


def test_watchdog_for_a_scenario_with_every_delay() -> None:
    scenario = parse_scenario(
        "version: 1\n"
        "server:\n"
        "  latency_ms: 100\n"
        "  reply: {chunks: 4, chunk_delay_ms: 50}\n"
        "  faults:\n"
        "    - {kind: stall, ms: 500, at: first_byte, calls: [2]}\n"
        "    - {kind: http_error, status: 429, retry_after_s: 10, calls: [3]}\n"
        "client: {kwargs: {timeout: 2, max_retries: 1}}\n"
        "session: {turns: 3, calls_per_turn: 2, idle_between_turns_ms: 200}\n"
    )
    # per call: 2 attempts x (2 s timeout + 0.8 s server) + 1 backoff of 10 s = 15.6 s
    # per turn: 2 calls + 0.2 s gap = 31.4 s; 15 s startup + 1.5 x 3 turns x 31.4 s
    assert watchdog_for(scenario) == pytest.approx(156.3, abs=1e-9)


def test_watchdog_for_the_sdk_defaults() -> None:
    # 3 attempts x 600 s + 2 backoffs of 8 s, 10 turns
    assert watchdog_for(parse_scenario("version: 1")) == pytest.approx(27255.0, abs=1e-9)


def test_watchdog_grows_with_stalls_between_chunks() -> None:
    base = "version: 1\nclient: {kwargs: {timeout: 1, max_retries: 0}}\nsession: {turns: 1}\n"
    stalled = base + "server:\n  faults: [{kind: stall, ms: 1000, at: between_chunks}]\n"
    # chunks 3 (default) -> up to 4 gaps of 1 s each
    assert watchdog_for(parse_scenario(stalled)) - watchdog_for(parse_scenario(base)) == (
        pytest.approx(1.5 * 4.0, abs=1e-9)
    )


# --- runs ---------------------------------------------------------------------------------

# The server reaps a connection 400 ms after its reply: a pool that has not taken its
# connection back by then (a client held up on a loaded machine) finds it reaped and drops
# it, leaving no CLOSE_WAIT to count; 50 ms read (0, 1, 1, 1, 1) once under load.
CLOSING = """version: 1
server: {keepalive: {idle_timeout_ms: 400}}
client: {kwargs: {timeout: 10}, close_request_clients: true}
session: {turns: 5, idle_between_turns_ms: 600}
"""


@pytest.mark.sdk
def test_a_healthy_run(tmp_path: Path) -> None:
    result = run_one(_scenario(tmp_path, CLOSING, "closing"), "keepalive-fixed", root=tmp_path)
    assert (result.scenario, result.variant, result.status) == (
        "closing",
        "keepalive-fixed",
        "completed",
    )
    assert (result.calls, result.errors, result.retries, result.connections) == (5, 0, 0, 5)
    assert result.close_wait_series == (0,) * 5
    assert (result.close_wait_after_close, result.close_wait_after_gc) == (0, 0)
    assert result.environment["openai"] == importlib.metadata.version("openai")
    assert result.detail == ""
    assert [s.label for s in result.samples] == [
        "start",
        *(f"turn {n}" for n in range(1, 6)),
        "live after gc",
        "after close",
        "after gc",
    ]


@pytest.mark.sdk
def test_use_after_close_fails_every_turn_after_the_first(
    tmp_path: Path, forks: Zygote | None
) -> None:
    result = run_one(
        _scenario(tmp_path, CLOSING), "keepalive-mutating", root=CHECKOUT, zygote=forks
    )
    assert result.status == "completed"
    assert [r.ok for r in result.records] == [True] + [False] * 4
    expected = "RuntimeError" if OPENAI_MAJOR >= 3 else "openai.APIConnectionError"
    assert dict(result.errors_by_type) == {expected: 4}
    assert result.records[-1].error_chain[-1] == (
        "RuntimeError: Cannot send a request, as the client has been closed."
    )
    assert result.connections == 1
    # openai 1.x/2.x retry the closed transport twice per call; the server never sees it.
    assert result.retries == 0
    assert result.sdk_retries == (0 if OPENAI_MAJOR >= 3 else 2 * 4)
    assert [r.sdk_retries for r in result.records] == [0] + [result.sdk_retries // 4] * 4


@pytest.mark.sdk
def test_abandoned_streams_grow_close_wait_by_one_per_turn(
    tmp_path: Path, forks: Zygote | None
) -> None:
    text = CLOSING.replace(
        "idle_between_turns_ms: 600}",
        "idle_between_turns_ms: 600, stream: true, abandon_streams: true}",
    )
    result = run_one(_scenario(tmp_path, text), "keepalive-fixed", root=CHECKOUT, zygote=forks)
    assert result.status == "completed"
    assert result.errors == 0
    assert result.close_wait_series == tuple(range(1, 6))
    assert (result.close_wait_growth, result.close_wait_peak) == (5, 5)
    # Leaked until GC, not for good: the collection with the gateway still up frees them.
    post = (result.close_wait_live_after_gc, result.close_wait_after_close)
    assert (*post, result.close_wait_after_gc) == (0, 0, 0)


@pytest.mark.sdk
def test_a_shared_mutated_pool_holds_one_close_wait(tmp_path: Path, forks: Zygote | None) -> None:
    text = CLOSING.replace("close_request_clients: true", "close_request_clients: false")
    result = run_one(_scenario(tmp_path, text), "keepalive-mutating", root=CHECKOUT, zygote=forks)
    assert (result.status, result.errors, result.retries) == ("completed", 0, 0)
    assert result.close_wait_series == (1,) * 5
    # Held by the live shared pool: a collection does not free it, only the shutdown does.
    assert result.close_wait_live_after_gc == 1
    assert result.close_wait_after_close == 0


@pytest.mark.sdk
def test_sdk_retries_the_server_sees_are_counted_on_both_sides(
    tmp_path: Path, forks: Zygote | None
) -> None:
    text = (
        "version: 1\nserver:\n  faults:\n"
        "    - {kind: http_error, status: 500, calls: [1, 2, 4]}\n"
        "client: {kwargs: {timeout: 10, max_retries: 2}}\nsession: {turns: 2}\n"
    )
    result = run_one(_scenario(tmp_path, text), "keepalive-fixed", root=CHECKOUT, zygote=forks)
    assert (result.status, result.errors, result.calls) == ("completed", 0, 2)
    assert result.server.retry_counts == (0, 1, 2, 0, 1)
    assert (result.retries, result.sdk_retries) == (3, 3)
    assert [r.sdk_retries for r in result.records] == [2, 1]


@pytest.mark.sdk
@pytest.mark.slow
def test_a_shared_pool_hides_dropped_reuse_behind_retries(
    tmp_path: Path, forks: Zygote | None
) -> None:
    text = (
        "version: 1\nserver: {faults: [{kind: reset_on_reuse, mode: rst}]}\n"
        "client: {kwargs: {timeout: 5, max_retries: 2}, close_request_clients: false}\n"
        "session: {turns: 5, idle_between_turns_ms: 20}\n"
    )
    scenario = _scenario(tmp_path, text)
    shared = run_one(scenario, "shared-http-client", root=CHECKOUT, zygote=forks)
    # Every turn after the first reuses the pooled connection, is dropped, and is retried.
    assert (shared.status, shared.errors, shared.retries) == ("completed", 0, 4)
    assert shared.established_series == (1,) * 5
    fixed = run_one(scenario, "keepalive-fixed", root=CHECKOUT, zygote=forks)
    assert (fixed.status, fixed.errors, fixed.retries) == ("completed", 0, 0)


@pytest.mark.sdk
@pytest.mark.slow  # two runs of 105 calls, one waits the 1 s pool timeout
def test_lost_connection_limits_run_dry_after_100_held_connections(
    tmp_path: Path, forks: Zygote | None
) -> None:
    # Five sessions abandon a stream each per turn: 100 connections held after 20 turns, so
    # every call of turn 21 waits the 1 s pool timeout (the sessions wait it in parallel).
    text = (
        "version: 1\nclient: {kwargs: {timeout: 1, max_retries: 0}}\n"
        "session: {turns: 21, concurrency: 5, stream: true, abandon_streams: true}\n"
    )
    scenario = _scenario(tmp_path, text)
    broken = run_one(scenario, "keepalive-mutating", root=CHECKOUT, zygote=forks)
    failed = [r for r in broken.records if not r.ok]
    assert (broken.status, broken.calls) == ("completed", 105)
    assert sorted((r.session, r.turn, r.error_type) for r in failed) == [
        (session, 21, "openai.APITimeoutError") for session in range(5)
    ]
    assert all(r.error_chain[1].endswith("PoolTimeout: ") for r in failed)
    fixed = run_one(scenario, "keepalive-fixed", root=CHECKOUT, zygote=forks)
    assert (fixed.status, fixed.calls, fixed.errors) == ("completed", 105, 0)


# --- failures of the run itself -------------------------------------------------------------

HANGING = """
import os, pathlib, subprocess, sys, time
import openai

HERE = pathlib.Path(__file__).parent

def make(client_kwargs, *, shared):
    if shared:
        return openai.OpenAI(**client_kwargs)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (HERE / "pids.txt").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(600)
"""

EXITING = """
import os, pathlib
import openai

COUNT = pathlib.Path(__file__).parent / "count"

def make(client_kwargs, *, shared):
    if not shared:
        n = int(COUNT.read_text()) + 1 if COUNT.exists() else 1
        COUNT.write_text(str(n))
        if n == EXIT_AT:
            os._exit(7)
    return openai.OpenAI(**client_kwargs)
"""

SHORT = "version: 1\nclient: {kwargs: {timeout: 10}}\nsession: {turns: 3}\n"


def test_a_watchdog_expiry_is_hung_whatever_else_was_recorded() -> None:
    lines = [Sample(SocketSample("start", 0, 0, 5)), Done()]
    stats = ServerStats()
    assert classify(lines, -9, True, stats, limit=20.0, stderr="Traceback ...") == (
        "hung",
        "watchdog killed the worker after 20.0 s",
    )
    assert classify([Untestable("x")], -9, True, stats, limit=1.5) == (
        "hung",
        "watchdog killed the worker after 1.5 s",
    )


def test_the_watchdog_fires_on_a_hanging_factory(tmp_path: Path) -> None:
    (tmp_path / "factory.py").write_text(HANGING)
    result = run_one(_scenario(tmp_path, SHORT), "factory.py:make", root=tmp_path, watchdog_s=1)
    assert (result.status, result.calls) == ("hung", 0)
    assert result.detail == "watchdog killed the worker after 1.0 s"


def test_a_cancelled_run_kills_the_worker_and_its_children(tmp_path: Path) -> None:
    (tmp_path / "factory.py").write_text(HANGING)
    scenario = _scenario(tmp_path, SHORT)
    cancel = threading.Event()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            run_one(scenario, "factory.py:make", root=tmp_path, watchdog_s=600, cancel=cancel)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        until(lambda: len(_read(tmp_path / "pids.txt").split()) == 2)
    finally:
        cancel.set()
        thread.join(DEADLINE_S)
    assert [type(exc) for exc in raised] == [RunCancelled]
    worker, child = map(int, _read(tmp_path / "pids.txt").split())
    assert gone(worker)
    until(lambda: gone(child))


@pytest.mark.parametrize(("exit_at", "status", "calls"), [(1, "untestable", 0), (3, "crashed", 2)])
def test_a_worker_that_dies(
    tmp_path: Path, exit_at: int, status: str, calls: int, forks: Zygote | None
) -> None:
    (tmp_path / "factory.py").write_text(EXITING.replace("EXIT_AT", str(exit_at)))
    result = run_one(_scenario(tmp_path, SHORT), "factory.py:make", root=tmp_path, zygote=forks)
    assert (result.status, result.calls, result.errors) == (status, calls, 0)
    assert result.detail == "worker exited with 7"


def test_an_unimportable_factory_is_untestable(tmp_path: Path, forks: Zygote | None) -> None:
    result = run_one(_scenario(tmp_path, SHORT), "gw_absent:make", root=tmp_path, zygote=forks)
    assert (result.status, result.calls) == ("untestable", 0)
    assert result.detail == (
        f"factory 'gw_absent:make': cannot import module 'gw_absent' (root {str(tmp_path)!r}): "
        "ModuleNotFoundError: No module named 'gw_absent'; check the spec and --root"
    )
    assert result.environment["python"] == sys.version.split()[0]


def test_a_scenario_without_a_file_runs_as_validated(tmp_path: Path, forks: Zygote | None) -> None:
    # The worker gets the validated value itself, so a parsed string needs no file.
    scenario = parse_scenario(SHORT, path="<string>")
    result = run_one(scenario, "baseline", root=tmp_path, zygote=forks)
    assert (result.scenario, result.status, result.errors) == ("scenario", "completed", 0)
    assert result.calls == 3


TRUST = """
import os, pathlib, openai

def make(client_kwargs, *, shared):
    if shared:
        seen = [os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")]
        (pathlib.Path(__file__).parent / "trust.txt").write_text(repr(seen))
    return openai.OpenAI(**client_kwargs)
"""


def test_a_worker_runs_with_an_empty_trust_store(tmp_path: Path) -> None:
    # Loading a CA bundle into every per-call client costs more than the call; a worker
    # speaks plain HTTP on loopback only, so it loads none (harness.environment.worker_env).
    (tmp_path / "factory.py").write_text(TRUST)
    env = {"SSL_CERT_FILE": "/etc/ssl/cert.pem", "PATH": "/bin"}
    assert worker_env(env)["SSL_CERT_DIR"] == os.devnull
    assert "SSL_CERT_FILE" not in worker_env(env)
    assert harness_env(env)["SSL_CERT_FILE"] == "/etc/ssl/cert.pem"  # installs keep theirs
    result = run_one(_scenario(tmp_path, SHORT), "factory.py:make", root=tmp_path)
    assert (result.status, result.calls, result.errors) == ("completed", 3, 0)
    assert (tmp_path / "trust.txt").read_text() == repr([None, os.devnull])


def test_results_round_trip(tmp_path: Path, forks: Zygote | None) -> None:
    result = run_one(_scenario(tmp_path, SHORT), "baseline", root=tmp_path, zygote=forks)
    assert RunResult.from_dict(result.to_dict()) == result


DRIVER = """
import signal
import sys
from pathlib import Path
# The test sends SIGINT: set its disposition here, since a background job inherits SIG_IGN.
signal.signal(signal.SIGINT, signal.default_int_handler)
from harness.runner import run_one
from harness.scenario import load_scenario
root = Path(sys.argv[1])
run_one(load_scenario(root / "s.yaml"), "factory.py:make", root=root, watchdog_s=600)
"""


def test_ctrl_c_in_the_parent_leaves_no_worker(tmp_path: Path) -> None:
    (tmp_path / "factory.py").write_text(HANGING)
    (tmp_path / "s.yaml").write_text(SHORT)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stderr=subprocess.PIPE)
    try:
        until(
            lambda: (
                (tmp_path / "pids.txt").exists()
                and len((tmp_path / "pids.txt").read_text().split()) == 2
            )
        )
        worker, child = map(int, (tmp_path / "pids.txt").read_text().split())
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=DEADLINE_S)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode != 0
    assert stderr.decode().rstrip().endswith("KeyboardInterrupt")
    assert gone(worker)
    until(lambda: gone(child))


LOUD = """
import os, sys
def make(client_kwargs, *, shared):
    sys.stderr.write("x" * 2_000_000 + "\\n")
    sys.stderr.flush()
    os._exit(5)
"""


def test_a_worker_stderr_flood_is_bounded_and_says_what_was_cut(
    tmp_path: Path, forks: Zygote | None
) -> None:
    (tmp_path / "factory.py").write_text(LOUD)
    result = run_one(_scenario(tmp_path, SHORT), "factory.py:make", root=tmp_path, zygote=forks)
    assert result.status == "untestable"
    cut_bytes = 2_000_001 - 64 * 1024
    full = f"worker exited with 5: [worker stderr: first {cut_bytes} bytes cut]" + "x" * 65535
    assert result.detail == full[:2000] + f"... [{len(full) - 2000} more characters cut]"


# --- CLOSE_WAIT until restart: the sample after gc.collect() with the gateway still up -------

BUNDLED_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.mark.slow  # two runs of a bundled scenario, gaps and all
@pytest.mark.parametrize(
    ("name", "series", "held"),
    [
        (
            "stale-pool-idle-fin",
            {"keepalive-mutating": (1, 1, 1, 1), "keepalive-fixed": (1, 2, 3, 4)},
            1,
        ),
        (
            "concurrent-stale-pool",
            {"keepalive-mutating": (4, 4, 4), "keepalive-fixed": (4, 8, 12)},
            4,
        ),
    ],
)
def test_only_the_live_after_gc_threshold_catches_the_mutated_pool(
    name: str, series: dict[str, tuple[int, ...]], held: int, forks: Zygote | None
) -> None:
    scenario = load_scenario(BUNDLED_SCENARIOS / f"{name}.yaml")
    buggy = run_one(scenario, "keepalive-mutating", root=CHECKOUT, zygote=forks)
    fixed = run_one(scenario, "keepalive-fixed", root=CHECKOUT, zygote=forks)
    for result in (buggy, fixed):
        assert (result.status, result.errors) == ("completed", 0)
        assert result.close_wait_series == series[result.variant]
        assert (result.close_wait_after_close, result.close_wait_after_gc) == (0, 0)
    # The buggy pool holds its reaped sockets through a collection; the fixed build's leak
    # does not survive one. The fds tell the same story.
    assert (buggy.close_wait_live_after_gc, fixed.close_wait_live_after_gc) == (held, 0)
    assert buggy.fds_live_after_gc - fixed.fds_live_after_gc == held
    assert judge(buggy, scenario.expect, "fail").reasons == (
        f"close_wait_live_after_gc {held} > 0",
    )
    assert judge(fixed, scenario.expect, "pass").healthy
    without = dataclasses.replace(scenario.expect, close_wait_live_after_gc=None)
    assert judge(buggy, without, "fail").healthy  # no other threshold tells them apart


# --- classify: a run's status from values alone (no process, no server) ---------------------

OK_CALL = Call(CallRecord(0, 1, 1, ok=True, latency_ms=1.0, started_s=0.0))
RAISED_CALL = Call(
    CallRecord(0, 1, 1, ok=False, latency_ms=1.0, started_s=0.0, factory_raised=True)
)
REACHED = ServerStats(connections=1, requests_per_connection=(1,))
UNREACHED = ServerStats()
REFUSED = Refused("socket.connect", "a connection to", "10.1.2.3:443", None, "refused it")


@pytest.mark.parametrize(
    ("lines", "exit", "hung", "stats", "stderr", "expected"),
    [
        ([OK_CALL, Done()], 0, False, REACHED, "", ("completed", "")),
        # a refusal decides whatever else happened, the watchdog included
        ([OK_CALL, REFUSED], 3, True, REACHED, "x", ("untestable", "refused it")),
        ([Untestable("no factory")], 3, False, UNREACHED, "tb", ("untestable", "no factory")),
        ([Untestable("")], 3, False, UNREACHED, "", ("untestable", "worker exited with 3")),
        (
            [],
            -11,
            False,
            UNREACHED,
            "Fatal Python error\nSegmentation fault\n\n",
            ("untestable", "worker exited with -11: Segmentation fault"),
        ),
        (
            [OK_CALL, Failed("RuntimeError: boom")],
            1,
            False,
            REACHED,
            "Traceback",
            ("crashed", "worker exited with 1: RuntimeError: boom"),
        ),
        # Done is not enough: the exit code must say the session ended too
        ([OK_CALL, Done()], 7, False, REACHED, "", ("crashed", "worker exited with 7")),
        ([OK_CALL], 0, True, REACHED, "", ("hung", "watchdog killed the worker after 2.5 s")),
        # only calls whose client was built count toward "never reached the server"
        ([RAISED_CALL, Done()], 0, False, UNREACHED, "", ("completed", "")),
        (
            [OK_CALL, Done()],
            0,
            False,
            UNREACHED,
            "",
            (
                "untestable",
                "the client never reached the mock server: 0 server calls against 1 client "
                "calls; the factory must build its client from client_kwargs (base_url)",
            ),
        ),
    ],
)
def test_classify_scores_a_run_from_its_lines_exit_and_watchdog(
    lines: list[WorkerLine],
    exit: int,
    hung: bool,
    stats: ServerStats,
    stderr: str,
    expected: tuple[str, str],
) -> None:
    assert classify(lines, exit, hung, stats, limit=2.5, stderr=stderr) == expected
