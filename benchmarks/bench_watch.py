"""``harness watch`` figures: what one sample costs, and what the series costs in memory.

    python benchmarks/bench_watch.py [--samples 200]

For N in 10, 100 and 1000: a child process holds N sockets in CLOSE_WAIT (a listener here
accepts each connection and closes it at once, the child never closes its end); the row is
the time of :meth:`harness.sockets.ProcessSockets.sample` on that child (median and p95 over
``--samples``). Then the memory of a :class:`harness.watch.Series` of 3,600 samples (an hour
at 1 s) with one endpoint, measured with tracemalloc. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc

from harness.sockets import ProcessSockets
from harness.watch import Counts, Sample, Series, Thresholds

CHILD = """
import socket, sys
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
print("ready", flush=True)
sys.stdin.read()
"""


def sample_cost(count: int, samples: int) -> tuple[float, float]:
    """(median, p95) ms of one sample of a process holding ``count`` CLOSE_WAIT sockets."""
    with socket.create_server(("127.0.0.1", 0), backlog=count) as listener:
        port = listener.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(port), str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            for _ in range(count):
                listener.accept()[0].close()  # our FIN: the child's end goes to CLOSE_WAIT
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            sockets = ProcessSockets(child.pid)
            while sockets.sample(0).total.close_wait < count:
                time.sleep(0.01)
            took = []
            for _ in range(samples):
                start = time.perf_counter()
                sockets.sample(0)
                took.append((time.perf_counter() - start) * 1000)
        finally:
            child.kill()
            child.wait()
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


def series_memory(samples: int = 3600) -> float:
    """KiB a series of ``samples`` one-endpoint samples holds."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    series = Series(Thresholds(max_growth=5, over_s=600))
    for i in range(samples):
        counts = {"10.0.0.1:443": Counts(3, i % 50, 0)}
        series.add(Sample(float(i), f"2026-12-07T00:00:{i % 60:02d}.000+00:00", 40, counts))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    print("CLOSE_WAIT sockets  median ms  p95 ms   (one ProcessSockets.sample)")
    for count in (10, 100, 1000):
        median, p95 = sample_cost(count, args.samples)
        print(f"{count:>18}  {median:>9.2f}  {p95:>6.2f}")
    kib = series_memory()
    print(f"series of 3600 samples, 1 endpoint: {kib:.0f} KiB ({kib * 1024 / 3600:.0f} B a sample)")


if __name__ == "__main__":
    main()
