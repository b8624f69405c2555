"""What leak attribution (``--attribute``) costs: whole runs with and without it, and its parts.

    python benchmarks/bench_attribution.py [--runs 7] [--scenario NAME] [--variant NAME]

Same sitting, interleaved (off, on, off, on, ...) so machine load hits both alike. Prints:

- the median and max wall time and worker CPU time of one ``run_one`` (a worker process, the
  mock server, the whole session) without and with attribution, and the differences;
- in this process: building one SDK HTTP client plain and with the classes patched
  (creation stack recorded), and one :meth:`Attribution.holders` call mapping the sockets of
  ``--clients`` live clients (what each sample adds).

Figures only; no thresholds (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.attribution import Attribution, Socket
from harness.bundled import resolve
from harness.mockserver import MockServer
from harness.probe import Probe
from harness.runner import run_one
from harness.scenario import load_scenario
from harness.variants._http import sdk_stack


def _ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _line(name: str, values: list[float]) -> str:
    return f"{name:<38} median {statistics.median(values):8.3f} ms  max {max(values):8.3f} ms"


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def runs(scenario: str, variant: str, count: int) -> None:
    """Wall time, and the worker's CPU time (user + sys of reaped children: load on a shared
    machine inflates it far less than wall time)."""
    loaded = load_scenario(resolve(scenario))
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(count):
        for attribute in (False, True):
            before = _cpu_ms()
            one = functools.partial(run_one, loaded, variant, attribute=attribute)
            wall[attribute].append(_ms(one))
            cpu[attribute].append(_cpu_ms() - before)
    print(f"run_one {scenario} / {variant}, {count} runs each, interleaved:")
    for attribute, name in ((False, "off"), (True, "on")):
        print(_line(f"  attribution {name}, wall", wall[attribute]))
        print(_line(f"  attribution {name}, worker CPU", cpu[attribute]))
    for figure, values in (("wall", wall), ("worker CPU", cpu)):
        delta = statistics.median(values[True]) - statistics.median(values[False])
        print(f"  difference of the medians, {figure}: {delta:+.1f} ms")


def parts(clients: int, count: int) -> None:
    stack = sdk_stack()
    pool = importlib.import_module(stack.__name__.replace("httpx", "httpcore")).ConnectionPool
    plain = [_ms(lambda: stack.Client().close()) for _ in range(count * 20)]
    plain_pool = [_ms(pool) for _ in range(count * 200)]
    with tempfile.TemporaryDirectory() as folder, Attribution(Path(folder)) as attribution:
        patched = [_ms(lambda: stack.Client().close()) for _ in range(count * 20)]
        patched_pool = [_ms(pool) for _ in range(count * 200)]
        loaded = load_scenario(resolve("stale-pool-idle-fin"))
        with MockServer(loaded.server) as server:
            live = [stack.Client() for _ in range(clients)]
            for client in live:
                client.post(f"{server.base_url}/chat/completions", json=_BODY)
            probe = Probe(server.port)
            sockets = [Socket(fd, status) for fd, status in probe.read().held()]
            mapping = [_ms(lambda: attribution.holders(sockets)) for _ in range(count * 5)]
            for client in live:
                client.close()
    print(f"in this process ({stack.__name__}):")
    print(_line("  build + close a Client, plain", plain))
    print(_line("  build + close a Client, recorded", patched))
    print(_line("  build a ConnectionPool, plain", plain_pool))
    print(_line("  build a ConnectionPool, recorded", patched_pool))
    print(_line(f"  holders() over {len(sockets)} sockets", mapping))


_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--scenario", default="stale-pool-idle-fin")
    parser.add_argument("--variant", default="keepalive-mutating")
    parser.add_argument("--clients", type=int, default=20)
    ns = parser.parse_args()
    runs(ns.scenario, ns.variant, ns.runs)
    parts(ns.clients, ns.runs)


if __name__ == "__main__":
    main()
