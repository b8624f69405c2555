"""Shrink figures: oracle runs and the reproducer found, deterministic and flaky.

    python benchmarks/bench_shrink.py [--shrinks 3] [--reruns 20] [--keep DIR]

The big scenario: use-after-close (``close_request_clients: true``) over 20 turns of 4
concurrent sessions, streamed, 60 ms gaps past a 40 ms idle timeout, with 3 faults (a 503,
a stall, a reset on reuse). Rows:

- deterministic: ``harness shrink`` with the bundled ``keepalive-mutating``, ``--shrinks``
  times (target: the reproducer in <= 60 oracle runs, with <= 2 turns, 1 session, no faults);
- flaky: the same with ``benchmarks/flaky_factory.py`` (the regression in 80% of runs), then
  each result rerun ``--reruns`` times with the check line the shrunk file suggests for a
  flaky reproducer (``harness check --repeat N --policy any``; target: >= 19 of 20
  reproduce), the first also as as many single runs (their share: the factory's own 80%,
  which no scenario raises).

Every run is real (worker processes, the SDK, the mock server); figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile
import time
from pathlib import Path

from harness.cli import main
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
FLAKY = "benchmarks/flaky_factory.py:create_openai_client"
BIG = """\
version: 1
name: big-use-after-close
server:
  keepalive: {idle_timeout_ms: 40, close: fin}
  faults:
    - {kind: http_error, status: 503, calls: [3]}
    - {kind: stall, ms: 20, calls: [5]}
    - {kind: reset_on_reuse, mode: rst, calls: [9]}
client:
  kwargs: {max_retries: 2, timeout: 10}
  close_request_clients: true
session:
  turns: 20
  concurrency: 4
  idle_between_turns_ms: 60
  stream: true
expect:
  errors: 0
variants:
  keepalive-mutating: fail
"""


def quiet(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return code, out.getvalue()


def shrink_once(big: Path, factory: str, out: Path) -> tuple[int, float]:
    """One ``harness shrink``: (oracle runs, wall seconds); prints the reproducer's shape."""
    t0 = time.monotonic()
    code, text = quiet(
        ["shrink", str(big), "--factory", factory, "--out", str(out), "--root", str(ROOT)]
    )
    wall = time.monotonic() - t0
    if code != 0:
        raise SystemExit(f"shrink exited {code}:\n{text}")
    found = re.search(r"shrunk in (\d+) oracle runs", text)
    runs = int(found.group(1)) if found else -1
    s = load_scenario(out)
    print(
        f"  {runs:3d} oracle runs, {wall:5.1f} s: turns {s.session.turns}, sessions "
        f"{s.session.concurrency}, calls/turn {s.session.calls_per_turn}, faults "
        f"{len(s.server.faults)}, gap {s.session.idle_between_turns_ms:g} ms, stream "
        f"{s.session.stream}"
    )
    return runs, wall


def reruns(scenario: Path, n: int, *, singles: bool) -> int:
    """Rerun the result with the check line its file suggests (and, with ``singles``, as
    single runs too); return how many of the ``n`` checks reproduced it."""
    found = re.search(r"--repeat (\d+) --policy any", scenario.read_text())
    repeat = found.group(1) if found else "1"
    check = ["check", "--scenario", str(scenario), "--factory", FLAKY, "--root", str(ROOT)]
    judged = sum(quiet([*check, "--repeat", repeat, "--policy", "any"])[0] == 1 for _ in range(n))
    line = f"check --repeat {repeat} --policy any"
    print(f"  {scenario.name} rerun {n} times ({line}): {judged} of {n} reproduce")
    if singles:
        single = sum(quiet(check)[0] == 1 for _ in range(n))
        print(f"  {scenario.name} as {n} single runs: {single} of {n} show it")
    return judged


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shrinks", type=int, default=3)
    parser.add_argument("--reruns", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the shrunk files here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        big = folder / "big-use-after-close.yaml"
        big.write_text(BIG)
        print("deterministic (keepalive-mutating), 20 turns x 4 sessions, 3 faults:")
        runs = [
            shrink_once(big, "keepalive-mutating", folder / f"det-{i}.yaml")[0]
            for i in range(args.shrinks)
        ]
        print(f"  oracle runs: max {max(runs)}, mean {sum(runs) / len(runs):.1f}")
        print("flaky (benchmarks/flaky_factory.py, 80% of runs):")
        flaky = [
            shrink_once(big, FLAKY, folder / f"flaky-{i}.yaml")[0] for i in range(args.shrinks)
        ]
        print(f"  oracle runs: max {max(flaky)}, mean {sum(flaky) / len(flaky):.1f}")
        for i in range(args.shrinks):
            reruns(folder / f"flaky-{i}.yaml", args.reruns, singles=i == 0)


if __name__ == "__main__":
    main_bench()
