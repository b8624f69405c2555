"""Print what each sharing bug raises on the installed openai SDK line, sync and async.

Each (scenario, variant) cell is one worker run (`harness.runner.run_one`); for every cell
this prints the error count by type, the server-seen retries, p95 latency, and each distinct
`error_chain` (outermost first) with its count. docs/factories.md quotes these figures:

    python3 -m nox -s "sdk_errors(openai='3')"   # also '2' and '1'
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import openai

from harness.runner import run_one
from harness.scenario import load_scenario

SCENARIOS = (
    "use-after-close",
    "concurrent-sessions",
    "reset-on-reuse-no-retries",
    "reset-on-reuse",
    "silent-idle-drop",
    "pool-exhaustion",
)
VARIANTS = (
    "keepalive-mutating",
    "keepalive-mutating-async",
    "shared-http-client",
    "shared-http-client-async",
)


def main() -> int:
    print(f"openai {openai.__version__}")
    root = Path(__file__).resolve().parent.parent
    for name in SCENARIOS:
        scenario = load_scenario(root / "scenarios" / f"{name}.yaml")
        for variant in VARIANTS:
            r = run_one(scenario, variant, root=root)
            print(
                f"{name} | {variant} | {r.client_kind} | errors {r.errors} "
                f"{dict(r.errors_by_type)} | retries {r.retries} | p95 {r.latency_p95_ms:.0f} ms"
            )
            chains = Counter(" <- ".join(c.error_chain) for c in r.records if not c.ok)
            for chain, count in chains.items():
                print(f"    {count}x {chain}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
