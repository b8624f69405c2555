"""harness.processes: no descendant outlives its run, no child outlives its parent.

Real processes throughout: guarded children that start daemons in their own session, parents
killed with SIGKILL. Every wait is bounded by DEADLINE_S; nothing here measures speed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from _wait import gone, until

from harness.environment import harness_env
from harness.processes import LIFELINE_ENV, LIFELINE_EXIT, kill_tree, spawn
from harness.runner import run_one
from harness.scenario import load_scenario

DEADLINE_S = 30.0

# Starts a daemon the classic way (fork, setsid, fork; the middle one exits) plus a plain
# child in a new session, and writes "<own pid> <daemon pid> <session child pid>" to PIDS.
DAEMONIZE = """
import os, subprocess, sys, time
def daemonize(pids_file):
    read, write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        pid = os.fork()
        if pid:
            os.write(write, str(pid).encode())
            os._exit(0)
        time.sleep(600)
        os._exit(0)
    os.close(write)
    daemon = int(os.read(read, 32))
    os.wait()
    session = subprocess.Popen(["sleep", "600"], start_new_session=True)
    with open(pids_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {daemon} {session.pid}")
    os.replace(pids_file + ".tmp", pids_file)
"""

GUARDED = (
    DAEMONIZE
    + """
from harness.processes import guard
guard()
daemonize(sys.argv[1])
if sys.argv[2] == "hang":
    time.sleep(600)
elif sys.argv[2] == "sigkill":
    os.kill(os.getpid(), 9)
sys.exit(int(sys.argv[2]))
"""
)

# A parent that spawns a guarded child and then hangs: the test kills it with SIGKILL.
PARENT = """
import sys, time
from harness.processes import spawn
child = spawn([sys.executable, "-c", sys.argv[1], sys.argv[2], "hang"], cwd=".", env=dict(
    __import__("os").environ))
time.sleep(600)
"""


def _pids(path: Path) -> list[int]:
    until(path.exists)
    return [int(p) for p in path.read_text().split()]


def _env() -> dict[str, str]:
    return harness_env(os.environ)


@pytest.mark.parametrize(("how", "code"), [("0", 0), ("7", 7), ("sigkill", -signal.SIGKILL)])
def test_a_guarded_child_ends_its_daemons_and_keeps_its_status(
    tmp_path: Path, how: str, code: int
) -> None:
    pids = tmp_path / "pids"
    with spawn([sys.executable, "-c", GUARDED, str(pids), how], cwd=tmp_path, env=_env()) as child:
        assert child.wait(timeout=DEADLINE_S) == code
    work, daemon, session = _pids(pids)
    assert work != child.pid  # the work ran in the supervisor's forked half
    # The supervisor reaped them before exiting: not even zombies are left.
    assert not any(psutil.pid_exists(p) for p in (work, daemon, session))


def test_kill_freezes_and_kills_the_whole_tree(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    with spawn(
        [sys.executable, "-c", GUARDED, str(pids), "hang"], cwd=tmp_path, env=_env()
    ) as child:
        work, daemon, session = _pids(pids)
        assert psutil.Process(daemon).ppid() == child.pid  # re-parented to the subreaper
        child.kill()
        assert child.proc.returncode == -signal.SIGKILL
    assert all(gone(p) for p in (work, daemon, session))


def test_kill_tree_of_an_unguarded_child_reaches_other_sessions(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = DAEMONIZE + "daemonize(sys.argv[1])\ntime.sleep(600)\n"
    proc = subprocess.Popen([sys.executable, "-c", script, str(pids)], start_new_session=True)
    daemon = 0
    try:
        _, daemon, session = _pids(pids)
        kill_tree(proc.pid)
        assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        assert gone(session)
    finally:
        proc.kill()
        proc.wait()
        if daemon:  # without a subreaper it went to init: out of the tree's reach
            os.kill(daemon, signal.SIGKILL)
    kill_tree(proc.pid)  # gone and reaped: a no-op


def test_sigkill_of_the_parent_ends_the_child_and_its_daemons(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, GUARDED, str(pids)], cwd=tmp_path, env=_env()
    )
    try:
        work, daemon, session = _pids(pids)
        supervisor = psutil.Process(work).ppid()
        os.kill(parent.pid, signal.SIGKILL)
        assert parent.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        until(lambda: all(gone(p) for p in (supervisor, work, daemon, session)))
    finally:
        parent.kill()
        parent.wait()


def test_a_child_without_the_lifeline_variable_is_not_guarded(tmp_path: Path) -> None:
    code = "from harness.processes import guard; import os; guard(); print(os.getpid())"
    env = {k: v for k, v in _env().items() if k != LIFELINE_ENV}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().isdigit() and done.stderr == ""


# --- through the runner: a factory that leaves daemons behind ----------------------------

FACTORY = (
    DAEMONIZE
    + """
import pathlib
import openai
HERE = pathlib.Path(__file__).parent

def make(client_kwargs, *, shared):
    if shared:
        daemonize(str(HERE / "pids"))
    return openai.OpenAI(**client_kwargs)
"""
)

DRIVER = """
import sys
from pathlib import Path
from harness.runner import run_one
from harness.scenario import load_scenario
root = Path(sys.argv[1])
run_one(load_scenario(root / "s.yaml"), "factory.py:make", root=root)
"""


def test_a_factory_daemon_does_not_survive_the_run(tmp_path: Path) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    (tmp_path / "s.yaml").write_text("version: 1\nclient: {kwargs: {timeout: 10}}\n")
    result = run_one(load_scenario(tmp_path / "s.yaml"), "factory.py:make", root=tmp_path)
    assert (result.status, result.calls, result.errors) == ("completed", 10, 0)
    work, daemon, session = _pids(tmp_path / "pids")
    assert not any(psutil.pid_exists(p) for p in (work, daemon, session))


def test_sigkill_of_a_runner_leaves_no_worker(tmp_path: Path, killed_tmpdir: Path) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    slow = "version: 1\nclient: {kwargs: {timeout: 10}}\n"
    slow += "session: {turns: 2, idle_between_turns_ms: 60000}\n"
    (tmp_path / "s.yaml").write_text(slow)
    env = {**_env(), "TMPDIR": str(killed_tmpdir)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], env=env)
    try:
        work, daemon, session = _pids(tmp_path / "pids")
        supervisor = psutil.Process(work).ppid()
        assert psutil.Process(supervisor).ppid() == driver.pid
        os.kill(driver.pid, signal.SIGKILL)
        assert driver.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        until(lambda: all(gone(p) for p in (supervisor, work, daemon, session)))
    finally:
        driver.kill()
        driver.wait()


def test_a_lifeline_variable_that_names_no_pipe_is_refused(tmp_path: Path) -> None:
    code = "from harness.processes import guard; guard()"
    env = {**_env(), LIFELINE_ENV: "0"}  # stdin: /dev/null, not a pipe
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ValueError: HARNESS_LIFELINE_FD=0: not a pipe; only spawn() sets this variable"
    )


LEAVING = """
import atexit, pathlib, sys, threading, time
from harness.processes import leave

out = pathlib.Path(sys.argv[1])
# Runs after the non-daemon thread ended: it records whether the thread's file was there.
atexit.register(lambda: (out / "atexit").write_text(str((out / "thread").exists())))

def late():
    time.sleep(0.2)
    (out / "thread").write_text("done")

class Teardown:
    def __del__(self):
        (out / "teardown").write_text("ran")

threading.Thread(target=late).start()
kept = Teardown()
print("flushed by leave", end="")
leave(3)
"""


def test_leave_waits_for_threads_runs_atexit_and_skips_the_teardown(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LEAVING, str(tmp_path)],
        env=harness_env(os.environ),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert (done.returncode, done.stdout) == (3, "flushed by leave")
    assert (tmp_path / "atexit").read_text() == "True"
    assert not (tmp_path / "teardown").exists()  # module globals are never torn down


def test_a_spawned_harness_command_dies_with_its_parent_and_takes_its_worker(
    tmp_path: Path, killed_tmpdir: Path
) -> None:
    """`harness check` as the bisect starts it: when the bisect dies (its lifeline closes),
    the check and the worker it started end too, long before the scenario would."""
    scenario = tmp_path / "slow.yaml"
    scenario.write_text("version: 1\nsession: {turns: 2, idle_between_turns_ms: 60000}\n")
    argv = [sys.executable, "-m", "harness", "check", "--scenario", str(scenario)]
    argv += ["--factory", "baseline", "--root", str(tmp_path)]
    env = {**harness_env(os.environ), "TMPDIR": str(killed_tmpdir)}
    with spawn(argv, cwd=tmp_path, env=env) as child:
        tree = until(lambda: _worker_tree(child.pid), what="a worker of the check")
        os.close(child._lifeline)  # what the kernel does when the parent dies, SIGKILL included
        child._lifeline = -1
        # The supervisor's watcher exits 137, or its main thread first dies as the work did.
        assert child.wait(DEADLINE_S) in (LIFELINE_EXIT, -signal.SIGKILL)
        assert all(gone(p.pid) for p in tree)


def _worker_tree(pid: int) -> list[psutil.Process]:
    """Every descendant of ``pid`` once one of them runs a worker, else []."""
    tree = psutil.Process(pid).children(recursive=True)
    with contextlib.suppress(psutil.Error):
        if any("harness.worker" in p.cmdline() for p in tree):
            return tree
    return []
