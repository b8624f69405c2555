"""Benchmark the mock server's memory over a long run: RSS and throughput per slice of calls.

Not a test: serves ``--calls`` plain chat completions (8 keep-alive clients in a child
process, the load generator of bench_server.py) from a MockServer in this process, and prints
this process's RSS and the request rate after each slice, then the RSS after a ``stats()``
snapshot. The issue's target: RSS after 1,000,000 calls <= 64 MB at the throughput of
bench_server.py's "json req/s, 8 clients". Bounded by ``--max-seconds``; loopback only.

    python benchmarks/bench_server_memory.py [--calls 1000000] [--slices 10]
        [--call-log-limit 10000] [--max-seconds 900]
"""

from __future__ import annotations

import argparse
import sys
import time

import psutil
from bench_server import REPLY, _measure

from harness.mockserver import MockServer
from harness.mockserver.calllog import DEFAULT_CALL_LOG_LIMIT
from harness.scenario import ServerSpec

CLIENTS = 8
MB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls in the whole run")
    parser.add_argument("--slices", type=int, default=10, help="RSS samples over the run")
    parser.add_argument("--call-log-limit", type=int, default=DEFAULT_CALL_LOG_LIMIT)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long")
    ns = parser.parse_args()
    process = psutil.Process()
    per_slice = max(CLIENTS, ns.calls // ns.slices)
    deadline = time.monotonic() + ns.max_seconds
    print(f"{ns.calls} calls, {CLIENTS} clients, call log limit {ns.call_log_limit}")
    print(f"{'calls':>10}{'req/s':>9}{'RSS MB':>9}")
    with MockServer(ServerSpec(reply=REPLY), call_log_limit=ns.call_log_limit) as server:
        print(f"{0:>10}{'':>9}{process.memory_info().rss / MB:>9.1f}", flush=True)
        done, rates = 0, []
        while done < ns.calls and time.monotonic() < deadline:
            seconds = max(1.0, deadline - time.monotonic())
            result = _measure(server.port, "json", CLIENTS, per_slice, seconds)
            done += int(result["requests"])
            rates.append(result["requests"] / result["seconds"])
            rss = process.memory_info().rss / MB
            print(f"{done:>10}{rates[-1]:>9.0f}{rss:>9.1f}", flush=True)
        stats = server.stats()
        rss = process.memory_info().rss / MB
    assert stats.total_calls == done, (stats.total_calls, done)
    print(f"after stats() ({len(stats.calls)} calls listed of {stats.total_calls}): {rss:.1f} MB")
    print(f"median {sorted(rates)[len(rates) // 2]:.0f} req/s; final RSS {rss:.1f} MB (<= 64)")
    return 0 if done >= ns.calls else 1


if __name__ == "__main__":
    sys.exit(main())
