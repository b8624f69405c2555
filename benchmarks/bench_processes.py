"""What process control costs: a guarded child versus a plain one, and a tree kill.

    python benchmarks/bench_processes.py [--runs 20]

Prints the median and max wall time of starting a Python child that imports
harness.processes and exits, once plain (subprocess.Popen) and once through spawn() + guard()
(lifeline, subreaper, supervisor fork), with the children's CPU time per run (user + sys,
which load on a shared machine does not inflate as it does wall time: a guarded run wakes
two more processes); and of kill() on a guarded child with two daemons.
Figures only; no thresholds (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.environment import harness_env
from harness.processes import spawn

PLAIN = "import harness.processes"
GUARDED = "from harness.processes import guard; guard()"
DAEMONS = """
import os, subprocess, sys, time
from harness.processes import guard
guard()
for _ in range(2):
    subprocess.Popen(["sleep", "600"], start_new_session=True)
open(sys.argv[1], "w").close()
time.sleep(600)
"""


def _timed(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def plain_ms(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", PLAIN], env=env, check=True)
    return _timed(start)


def guarded_ms(env: dict[str, str]) -> float:
    start = time.perf_counter()
    with spawn([sys.executable, "-c", GUARDED], cwd=".", env=env) as child:
        assert child.wait() == 0
    return _timed(start)


def kill_ms(env: dict[str, str], folder: Path) -> float:
    ready = folder / f"ready-{time.monotonic_ns()}"
    with spawn([sys.executable, "-c", DAEMONS, str(ready)], cwd=".", env=env) as child:
        while not ready.exists():
            time.sleep(0.005)
        start = time.perf_counter()
        child.kill()
        return _timed(start)


def _line(label: str, values: list[float]) -> str:
    return f"{label:40} median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms"


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _measured(label: str, run: Callable[[], float], runs: int) -> None:
    cpu = _cpu_ms()
    walls = [run() for _ in range(runs)]
    per_run = (_cpu_ms() - cpu) / runs
    print(_line(label, walls) + f"   cpu {per_run:6.1f} ms/run")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    env = harness_env(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        _measured("plain child (Popen, exit)", lambda: plain_ms(env), runs)
        _measured("guarded child (spawn + guard, exit)", lambda: guarded_ms(env), runs)
        kills = [kill_ms(env, Path(tmp)) for _ in range(runs)]
        print(_line("kill(): guarded child + 2 daemons", kills))


if __name__ == "__main__":
    main()
