"""Workers forked from a zygote: the same runs as fresh interpreters, the same isolation."""

from __future__ import annotations

import contextlib
import json
import os
import quopri
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from _wait import gone, until

from harness.environment import ZYGOTE_FD_ENV, worker_env
from harness.errors import RunCancelled, WorkerError
from harness.result import COUNT_FIELDS, RunResult
from harness.runner import run_one
from harness.scenario import Scenario, load_scenario
from harness.zygote import Zygote, ZygotePool, usable, workers_for

pytestmark = pytest.mark.skipif(not usable(), reason="needs fork and pidfd_open (Linux)")

DEADLINE_S = 30.0

SHORT = "version: 1\nclient: {kwargs: {timeout: 10}}\nsession: {turns: 3}\n"

# Module-level state and GC settings a leaking worker would carry into the next run.
STATE = """
import gc, json, os, pathlib, sys
import openai, psutil

HERE = pathlib.Path(__file__).parent
RUNS = []

def make(client_kwargs, *, shared):
    if shared:
        RUNS.append(1)
        record = {
            "runs": len(RUNS),
            "leaked": hasattr(json, "LEAKED"),
            "threshold": gc.get_threshold(),
            "frozen": gc.get_freeze_count(),
            "main": sys.modules["__main__"].__spec__.name,
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
            # the worker's supervisor's parent: the zygote, or whoever spawned the worker
            "zygote": psutil.Process(os.getppid()).ppid(),
        }
        with open(HERE / "state.jsonl", "a") as out:
            out.write(json.dumps(record) + "\\n")
        gc.set_threshold(1, 1, 1)
        gc.freeze()
        json.LEAKED = True
    return openai.OpenAI(**client_kwargs)
"""

# Writes "worker child zygote" pids (the zygote: the worker supervisor's parent), then hangs.
HANGING = """
import os, pathlib, subprocess, sys, time
import openai, psutil

HERE = pathlib.Path(__file__).parent

def make(client_kwargs, *, shared):
    if shared:
        return openai.OpenAI(**client_kwargs)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    parent = psutil.Process(os.getppid()).ppid()
    (HERE / "pids.txt").write_text(f"{os.getpid()} {child.pid} {parent}")
    time.sleep(600)
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


def _zygote(root: Path) -> Zygote:
    """A zygote of the test's own, for what depends on its history (what it warmed, its
    end); the rest fork from :func:`zygote`."""
    return Zygote(python=sys.executable, root=root, env=worker_env(os.environ))


@pytest.fixture
def zygote(forks: Zygote | None) -> Zygote:
    """The test process's zygote (conftest ``forks``, which has served other tests' runs and
    serves runs in any folder): for what every zygote does to a run; read its fork count as
    a difference. Each zygote of a test's own costs a second of CPU, on every SDK line."""
    assert forks is not None
    return forks


def _folder(root: Path, name: str, factory: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "factory.py").write_text(factory)
    return folder


def _scenario(folder: Path, text: str) -> Scenario:
    (folder / "s.yaml").write_text(text)
    return load_scenario(folder / "s.yaml")


def _pids(folder: Path) -> list[int]:
    path = folder / "pids.txt"
    words = path.read_text().split() if path.exists() else []
    return [int(word) for word in words] if len(words) == 3 else []


COUNTS = (*COUNT_FIELDS, "environment")


def _counts(result: RunResult, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: getattr(result, name) for name in COUNTS if name not in skip}


USE_AFTER_CLOSE = """version: 1
server: {keepalive: {idle_timeout_ms: 5000}}
client: {kwargs: {timeout: 10, max_retries: 0}, close_request_clients: true}
session: {turns: 4, idle_between_turns_ms: 20}
"""

ABANDONED = """version: 1
server: {keepalive: {idle_timeout_ms: 100}}
client: {kwargs: {timeout: 10}, close_request_clients: true}
session: {turns: 4, idle_between_turns_ms: 200, stream: true, abandon_streams: true}
"""


@pytest.mark.sdk
@pytest.mark.slow
def test_a_forked_run_measures_what_a_fresh_one_does(root: Path, zygote: Zygote) -> None:
    cases = [
        (USE_AFTER_CLOSE, "keepalive-mutating", (), (0, 0, 0, 0), 3),
        (ABANDONED, "keepalive-fixed", (), (1, 2, 3, 4), 0),
    ]
    before = zygote.forks
    for number, (text, variant, skip, close_wait, errors) in enumerate(cases, 1):
        folder = root / variant
        folder.mkdir()
        scenario = _scenario(folder, text)
        forked = run_one(scenario, variant, root=root, zygote=zygote)
        assert zygote.forks - before == number
        fresh = run_one(scenario, variant, root=root)
        assert zygote.forks - before == number
        assert _counts(forked, skip) == _counts(fresh, skip)
        assert (forked.status, forked.close_wait_series, forked.errors) == (
            "completed",
            close_wait,
            errors,
        )


# Records, as the run starts, which of the SDK's response models are built (openai defers each
# model's pydantic schema to the first response it parses: 6-70 ms each).
MODELS = """
import json, pathlib
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

HERE = pathlib.Path(__file__).parent

def make(client_kwargs, *, shared):
    if shared:
        built = [m.__pydantic_complete__ for m in (ChatCompletion, ChatCompletionChunk, Response)]
        with open(HERE / "built.jsonl", "a") as out:
            out.write(json.dumps(built) + "\\n")
    return openai.OpenAI(**client_kwargs)
"""


@pytest.mark.sdk
def test_forked_runs_find_the_sdks_response_models_built_for_their_api(root: Path) -> None:
    folder = _folder(root, "models", MODELS)
    one_turn = "version: 1\nclient: {kwargs: {timeout: 10}}\nsession: {turns: 1}\n"
    chat = _scenario(folder, one_turn)
    (folder / "r.yaml").write_text(one_turn + "server: {api: responses}\n")
    responses = load_scenario(folder / "r.yaml")
    spec = "models/factory.py:make"
    with _zygote(root) as zygote:
        runs = [run_one(s, spec, root=root, zygote=zygote) for s in (chat, responses)]
    fresh = run_one(chat, spec, root=root)
    assert [r.status for r in [*runs, fresh]] == ["completed"] * 3
    built = [json.loads(line) for line in (folder / "built.jsonl").read_text().splitlines()]
    assert built == [
        [True, True, False],  # the zygote warmed the chat API as it started
        [True, True, True],  # and the Responses API before its first run
        [False, False, False],  # a fresh interpreter builds each on its first parse
    ]


@pytest.mark.slow
def test_each_run_starts_from_the_zygotes_clean_state(root: Path, zygote: Zygote) -> None:
    folder = _folder(root, "state", STATE)
    scenario = _scenario(folder, SHORT)
    runs = [run_one(scenario, "state/factory.py:make", root=root, zygote=zygote) for _ in "ab"]
    fresh = run_one(scenario, "state/factory.py:make", root=root)
    assert [r.status for r in [*runs, fresh]] == ["completed"] * 3
    records = [json.loads(line) for line in (folder / "state.jsonl").read_text().splitlines()]
    assert [(r["runs"], r["leaked"]) for r in records] == [(1, False)] * 3
    assert [r["threshold"] for r in records] == [[700, 10, 10]] * 3
    # Forked runs see the zygote's frozen imports, the same count each: no run's freeze leaks.
    frozen = [r["frozen"] for r in records]
    assert frozen[0] == frozen[1] > 0 == frozen[2]
    assert [r["main"] for r in records] == [
        "harness.zygote_process",
        "harness.zygote_process",
        "harness.worker",
    ]
    # As many descriptors as a fresh worker (their numbers follow the runner's: the settle
    # channel keeps the number it had there).
    assert len(records[0]["fds"]) == len(records[1]["fds"]) == len(records[2]["fds"])


# Records where it runs and what it imported: relative reads resolve in the run's folder.
WHERE = """
import json, os, pathlib, quopri, sys
import openai

def make(client_kwargs, *, shared):
    if shared:
        record = {
            "cwd": os.getcwd(),
            "path0": sys.path[0],
            "main": sys.modules["__main__"].__spec__.name,
            "quopri": quopri.__file__,
            "note": pathlib.Path("note.txt").read_text(),
        }
        pathlib.Path("where.json").write_text(json.dumps(record))
    return openai.OpenAI(**client_kwargs)
"""


def test_a_run_in_another_folder_forks_there_as_a_fresh_one_would_start(
    root: Path, zygote: Zygote
) -> None:
    elsewhere = root / "elsewhere"  # the zygote's own folder is the checkout
    folder = _folder(elsewhere, "pkg", WHERE)
    (elsewhere / "note.txt").write_text("in elsewhere")
    scenario = _scenario(folder, SHORT)
    before = zygote.forks
    forked = run_one(scenario, "pkg/factory.py:make", root=elsewhere, zygote=zygote)
    assert (forked.status, zygote.forks - before) == ("completed", 1)
    record = json.loads((elsewhere / "where.json").read_text())
    fresh = run_one(scenario, "pkg/factory.py:make", root=elsewhere)
    assert fresh.status == "completed"
    assert json.loads((elsewhere / "where.json").read_text()) == {
        **record,
        "main": "harness.worker",
    }
    assert record["main"] == "harness.zygote_process"
    assert record["cwd"] == record["path0"] == str(elsewhere.resolve())
    assert record["note"] == "in elsewhere"


def test_a_folder_that_shadows_a_preloaded_module_starts_a_fresh_interpreter(
    root: Path, zygote: Zygote
) -> None:
    """The zygote imported the standard library's ``quopri`` (``email.message`` does); a
    folder with a ``quopri.py`` of its own would import that one in a fresh interpreter, so
    its runs get one. (The copy works like the original: the fresh run must complete.)"""
    env = worker_env(os.environ)
    folder = _folder(root, "pkg", WHERE)
    (root / "note.txt").write_text("here")
    own = root / "quopri.py"
    own.write_text(Path(quopri.__file__).read_text())
    scenario = _scenario(folder, SHORT)
    assert not zygote.serves(python="/usr/bin/python3", root=root, env=env)
    assert not zygote.serves(python=sys.executable, root=root, env={**env, "X_HARNESS": "1"})
    assert not zygote.serves(python=sys.executable, root=root, env=env)
    own.rename(root / "kept.txt")
    assert zygote.serves(python=sys.executable, root=root, env=env)
    (root / "quopri").mkdir()  # a package folder shadows as a module file does
    assert not zygote.serves(python=sys.executable, root=root, env=env)
    (root / "quopri").rmdir()
    (root / "kept.txt").rename(own)
    before = zygote.forks
    result = run_one(scenario, "pkg/factory.py:make", root=root, zygote=zygote)
    assert (result.status, zygote.forks - before) == ("completed", 0)
    record = json.loads((root / "where.json").read_text())
    assert (record["main"], record["quopri"]) == ("harness.worker", str(own))


def test_the_watchdog_kills_a_forked_worker(root: Path, zygote: Zygote) -> None:
    folder = _folder(root, "watchdog", HANGING)
    scenario = _scenario(folder, SHORT)
    before = zygote.forks
    result = run_one(scenario, "watchdog/factory.py:make", root=root, watchdog_s=1, zygote=zygote)
    assert zygote.forks - before == 1
    assert (result.status, result.calls) == ("hung", 0)
    assert result.detail == "watchdog killed the worker after 1.0 s"


def _in_thread(run: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``run`` on a thread; the list gets what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, raised


def test_a_cancelled_forked_run_leaves_nothing_and_the_zygote_serves_on(
    root: Path, zygote: Zygote
) -> None:
    folder = _folder(root, "cancel", HANGING)
    scenario = _scenario(folder, SHORT)
    cancel = threading.Event()
    before = zygote.forks
    thread, raised = _in_thread(
        lambda: run_one(scenario, "cancel/factory.py:make", root=root, cancel=cancel, zygote=zygote)
    )
    try:
        until(lambda: bool(_pids(folder)))
    finally:
        cancel.set()
        thread.join(DEADLINE_S)
    assert [type(exc) for exc in raised] == [RunCancelled]
    worker, child, parent = _pids(folder)
    assert gone(worker)
    until(lambda: gone(child))
    assert not gone(parent)  # the zygote lives on ...
    after = run_one(scenario, "baseline", root=root, zygote=zygote)
    assert (after.status, after.calls, zygote.forks - before) == ("completed", 3, 2)  # ... forks


def test_closing_the_zygote_ends_a_running_worker(root: Path) -> None:
    folder = _folder(root, "closing", HANGING)
    scenario = _scenario(folder, SHORT)
    with workers_for(root) as zygote:
        assert zygote is not None
        thread, raised = _in_thread(
            lambda: run_one(scenario, "closing/factory.py:make", root=root, zygote=zygote)
        )
        until(lambda: bool(_pids(folder)))
    thread.join(DEADLINE_S)
    assert [type(exc) for exc in raised] == [WorkerError]
    assert str(raised[0]).startswith("the zygote ended")
    for pid in _pids(folder):
        until(lambda pid=pid: gone(pid))


# A harness process: one run of ROOT/FOLDER's factory, its worker from a zygote (its own, or
# the one it was handed). Usage: python -c DRIVER ROOT FOLDER
DRIVER = """
import sys
from pathlib import Path
from harness.runner import run_one
from harness.scenario import load_scenario
from harness.zygote import workers_for
root, folder = Path(sys.argv[1]), sys.argv[2]
with workers_for(root) as zygote:
    run_one(load_scenario(root / folder / "s.yaml"), f"{folder}/factory.py:make", root=root,
            watchdog_s=600, zygote=zygote)
"""


def test_a_killed_harness_takes_the_zygote_and_its_workers_along(
    root: Path, killed_tmpdir: Path
) -> None:
    folder = _folder(root, "killed", HANGING)
    _scenario(folder, SHORT)
    env = {**os.environ, "TMPDIR": str(killed_tmpdir)}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root), "killed"], cwd=root, env=env
    )
    try:
        until(lambda: bool(_pids(folder)))
    finally:
        driver.send_signal(signal.SIGKILL)  # no cleanup runs: only the lifelines are left
        driver.wait()
    for pid in _pids(folder):
        until(lambda pid=pid: gone(pid))


def test_passed_descriptors_keep_their_numbers_in_the_worker(root: Path) -> None:
    # A FIFO as the job file: the worker blocks reading it, so its descriptors can be read.
    job = root / "job.json"
    os.mkfifo(job)
    read_end, write_end = os.pipe()
    try:
        with _zygote(root) as zygote:
            forked = zygote.fork(job, root / "stderr.txt", pass_fds=[write_end])
            until(lambda: bool(psutil.Process(forked.pid).children()))
            [work] = psutil.Process(forked.pid).children()
            assert os.readlink(f"/proc/{work.pid}/fd/{write_end}") == os.readlink(
                f"/proc/self/fd/{write_end}"
            )
            job.write_text("{")  # unusable: the worker exits 2, as a fresh one would
            assert forked.wait(DEADLINE_S) == 2
    finally:
        os.close(read_end)
        os.close(write_end)
    assert (root / "stderr.txt").read_text().startswith("harness worker: error: job file")


def test_a_job_the_warm_up_cannot_read_is_left_to_the_worker(root: Path) -> None:
    # The zygote reads each job's API to warm it: an unreadable job costs it nothing.
    job = root / "job.json"
    job.write_text("{")
    with _zygote(root) as zygote:
        assert zygote.fork(job, root / "stderr.txt").wait(DEADLINE_S) == 2
        run = run_one(_scenario(root, SHORT), "baseline", root=root, zygote=zygote)
        assert (run.status, zygote.forks) == ("completed", 2)
    assert (root / "stderr.txt").read_text().startswith("harness worker: error: job file")


@pytest.mark.skipif(not usable(), reason="no zygote on this platform")
def test_a_pool_starts_its_zygote_at_the_second_run_and_ends_it(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    # the session's own zygotes (the plugin's, for this suite's harness_check tests) stay
    before = {p.pid for p in _zygote_processes()}
    pool = ZygotePool()
    try:
        assert pool.get(one) is None  # a single run is cheaper in a fresh interpreter
        zygote = pool.get(two)
        assert zygote is not None and pool.get(one) is zygote  # one zygote for any folder
        # the zygote (and the supervisor its guard forks)
        started = [p for p in _zygote_processes() if p.pid not in before]
        assert started != []
    finally:
        pool.close()
    for process in started:
        until(lambda process=process: gone(process.pid))
    pool.close()  # idempotent


def _zygote_processes() -> list[psutil.Process]:
    """This process's zygotes and what they forked (a run that just ended may be a zombie
    until its zygote reaps it: no command line, not counted)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # ZombieProcess is one
            if "harness.zygote_process" in " ".join(process.cmdline()):
                found.append(process)
    return found


# --- a zygote shared with other processes (Zygote.share: the bisect's oracle calls) ----------


def _check(root: Path, env: dict[str, str], conn: socket.socket) -> int:
    """``harness check`` (one run) of the STATE factory in ``root``, handed ``conn``."""
    scenario, fd = root / "state" / "s.yaml", conn.fileno()
    argv = [sys.executable, "-m", "harness", "check", "--scenario", str(scenario),
            "--factory", "state/factory.py:make", "--root", str(root)]  # fmt: skip
    env = {**env, ZYGOTE_FD_ENV: str(fd)}
    check = subprocess.Popen(argv, cwd=root, env=env, pass_fds=(fd,), stdout=subprocess.DEVNULL)
    conn.close()
    return check.wait(DEADLINE_S * 2)


def test_a_process_handed_a_connection_forks_its_runs_from_the_zygote(
    root: Path, zygote: Zygote
) -> None:
    folder = _folder(root, "state", STATE)
    _scenario(folder, SHORT)
    env = dict(os.environ)
    before = zygote.forks
    # one run: on its own, check would start it in a fresh interpreter
    assert _check(root, env, zygote.share()) == 0
    # another environment: the zygote would not start the run as the check would
    assert _check(root, {**env, "X_HARNESS": "1"}, zygote.share()) == 0
    assert zygote.forks == before  # the check's runs are the check's: the owner counts its own
    records = [json.loads(line) for line in (folder / "state.jsonl").read_text().splitlines()]
    # this process's zygote (it started it; guard() put a supervisor in between)
    assert psutil.Process(records[0]["zygote"]).parent().ppid() == os.getpid()
    assert [(r["main"], r["frozen"] > 0) for r in records] == [
        ("harness.zygote_process", True),
        ("harness.worker", False),
    ]


def test_a_client_that_dies_takes_its_runs_along_and_the_zygote_serves_on(
    root: Path, killed_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the killed client's run folder goes with the test; zygote and client keep one
    # environment, or the client would start its run fresh
    monkeypatch.setenv("TMPDIR", str(killed_tmpdir))
    folder = _folder(root, "client", HANGING)
    scenario = _scenario(folder, SHORT)
    with _zygote(root) as zygote:
        conn = zygote.share()
        client = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(root), "client"],
            cwd=root,
            env={**os.environ, ZYGOTE_FD_ENV: str(conn.fileno())},
            pass_fds=(conn.fileno(),),
        )
        conn.close()
        try:
            until(lambda: bool(_pids(folder)))
        finally:
            client.send_signal(signal.SIGKILL)  # it cleans up nothing: its hang-up must
            client.wait()
        worker, child, parent = _pids(folder)
        until(lambda: gone(worker) and gone(child))
        assert not gone(parent)  # the zygote it forked from lives on ...
        after = run_one(scenario, "baseline", root=root, zygote=zygote)
        assert (after.status, after.calls, zygote.forks) == ("completed", 3, 1)  # ... and forks


@pytest.mark.parametrize("kind", ["pipe", "number"])
def test_a_descriptor_that_is_no_zygote_connection_is_left_alone(
    root: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_end, write_end = os.pipe()
    try:
        monkeypatch.setenv(ZYGOTE_FD_ENV, str(read_end) if kind == "pipe" else "stdin")
        with workers_for(root, fresh=True) as zygote:
            assert zygote is None
        assert ZYGOTE_FD_ENV not in os.environ  # read once, and no child inherits it
        os.fstat(read_end)  # still open: not ours to close
    finally:
        os.close(read_end)
        os.close(write_end)
