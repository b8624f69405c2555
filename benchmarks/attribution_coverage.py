"""Does leak attribution name a creation site wherever sockets are left? (issue 21's check)

    python benchmarks/attribution_coverage.py [--jobs N] [PATHS...]

Runs ``harness regress --attribute`` over the bundled scenarios (or PATHS) and every variant
they list, then prints, for each cell whose ``live after gc`` sample still holds sockets toward
the mock server (CLOSE_WAIT or ESTABLISHED), who holds them, and ``BAD`` where the holders do
not add up to those sockets or one has no creation site. The last line counts both; exit 1 if
any cell is BAD. A figure and a check for a person to run on an SDK line, not a timed test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.holders import describe
from harness.report.jsonfile import load_summary
from harness.result import LIVE_AFTER_GC


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--jobs", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="attribution-coverage-") as tmp:
        jobs = [] if args.jobs is None else ["--jobs", args.jobs]
        subprocess.run(
            [sys.executable, "-m", "harness", "regress", *args.paths, "--attribute", "--quiet",
             "--report-dir", tmp, *jobs],
            check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        results = next(Path(tmp).glob("*/results.json"))
        summary = load_summary(results)
    cells = bad = 0
    for entry in summary.entries:
        for run in entry.runs:
            live = next((s for s in run.samples if s.label == LIVE_AFTER_GC), None)
            if live is None or live.close_wait + live.established == 0:
                continue
            cells += 1
            held = sum(h.sockets for h in live.held_by)
            ok = held == live.close_wait + live.established and all(h.site for h in live.held_by)
            bad += not ok
            holders = "; ".join(describe(h) for h in live.held_by) or "(no holder)"
            print(
                f"{'ok ' if ok else 'BAD'} {entry.scenario} / {entry.variant}: close_wait "
                f"{live.close_wait}, established {live.established} | {holders}"
            )
    print(f"{cells} cells hold sockets live after gc; {bad} not attributed to a creation site")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
