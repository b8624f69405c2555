"""Import round-trip figures: how far a replayed gap lands from the compressed one.

    python benchmarks/bench_import.py [--rounds 4] [--compress 2]

Runs a timeline scenario (two sessions, gaps on both sides of a 400 ms idle timeout) against
``baseline`` in a real worker, exports the mock server's call log as a trace, imports it
``--compress`` times faster, runs the replay and exports again. Prints, per round, each
session's gaps as the server saw them in the first run and in the replay, each replayed gap's
difference from the compressed one (what the client's own work between two calls adds), and
whether every gap kept its side of the idle timeout. Figures only, no pass/fail; the machine
is shared.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from harness.importer import import_trace, read_trace, write_trace
from harness.importer.model import Trace
from harness.runner import run_one
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
IDLE_MS = 400
SCENARIO = f"""\
version: 1
server: {{keepalive: {{idle_timeout_ms: {IDLE_MS}}}}}
client: {{kwargs: {{timeout: 10}}}}
session:
  timeline:
    - calls: [{{stream: true, idle_ms: 60}}, {{idle_ms: 800}}, {{idle_ms: 30}}, {{idle_ms: 600}}]
    - start_ms: 100
      calls: [{{idle_ms: 600}}, {{stream: true, idle_ms: 40}}, {{idle_ms: 600}}]
"""


def _gaps(trace: Trace) -> dict[str, list[float]]:
    return {
        name: [(b.start_s - a.end_s) * 1000 for a, b in itertools.pairwise(calls)]
        for name, calls in trace.sessions().items()
    }


def _traced(text: str, folder: Path, name: str) -> Trace:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_one(load_scenario(path), "baseline", root=ROOT)
    write_trace(result.server.calls, folder / f"{name}.jsonl")
    return read_trace(folder / f"{name}.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--compress", type=float, default=2.0)
    ns = parser.parse_args()
    worst, sides = 0.0, True
    for round_ in range(1, ns.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            first = _traced(SCENARIO, folder, "first")
            text = import_trace(
                first, compress=ns.compress, idle_timeout_ms=IDLE_MS, name="replay"
            ).text
            before, after = _gaps(first), _gaps(_traced(text, folder, "replay"))
        for name in before:
            diffs = [g2 - g / ns.compress for g, g2 in zip(before[name], after[name], strict=True)]
            kept = all(
                (g > IDLE_MS) == (g2 > IDLE_MS / ns.compress)
                for g, g2 in zip(before[name], after[name], strict=True)
            )
            worst, sides = max(worst, *map(abs, diffs)), sides and kept
            print(
                f"round {round_} session {name}: gaps {[round(g) for g in before[name]]} ms -> "
                f"{[round(g) for g in after[name]]} ms, off by {[round(d, 1) for d in diffs]} ms, "
                f"sides {'kept' if kept else 'CROSSED'}"
            )
    print(f"worst difference {worst:.1f} ms; every gap kept its side: {sides}")


if __name__ == "__main__":
    main()
