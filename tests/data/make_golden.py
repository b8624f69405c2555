"""Regenerate tests/data/results.json, the golden input of the rendering and compare tests.

    python3 -m nox -s golden        # or: python tests/data/make_golden.py (openai 3.x)

Runs the two scenarios in tests/data/scenarios/ across their variants for real (workers,
mock servers, the real SDK), checks that the run shows the mix the tests lean on (healthy,
caught, not caught, observed), and writes the summary with a fixed run id and start time.
Run it again whenever RunResult or the summary gains a field, and commit the new file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.environment import fingerprint
from harness.matrix import plan, run_matrix
from harness.report import render_json
from harness.scenario import load_scenario
from harness.verdict import RegressSummary

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = HERE / "results.json"
RUN_ID, STARTED = "20261124T150000Z-regress", "2026-11-24T15:00:00Z"
# as_expected per cell in plan order: only abandoned-clients / keepalive-mutating is missed.
MIX = [True, True, True, True, False, True]


def main() -> int:
    paths = [
        HERE / "scenarios" / f"{name}.yaml" for name in ("use-after-close", "abandoned-clients")
    ]
    scenarios = [load_scenario(path) for path in paths]
    started = time.monotonic()
    outcome = run_matrix(plan(scenarios), jobs=1, root=REPO)
    summary = RegressSummary(
        run_id=RUN_ID,
        command="regress",
        started=STARTED,
        wall_s=round(time.monotonic() - started, 3),
        entries=outcome.entries,
        environment=fingerprint(),
        scenarios={s.name: _relative(s.to_dict()) for s in scenarios},
    )
    got = [e.as_expected for e in summary.entries]
    if got != MIX:
        print(
            f"make_golden: as_expected per cell {got}, wanted {MIX}; not written", file=sys.stderr
        )
        return 1
    OUT.write_text(render_json(summary), encoding="utf-8")
    print(f"make_golden: wrote {OUT.relative_to(REPO)} (openai {summary.environment['openai']})")
    return 0


def _relative(scenario: dict[str, object]) -> dict[str, object]:
    """The scenario with its path relative to the repository, so the file is the same anywhere."""
    return {**scenario, "path": str(Path(str(scenario["path"])).relative_to(REPO))}


if __name__ == "__main__":
    sys.exit(main())
