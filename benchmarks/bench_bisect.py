"""Bisect figures: right answers and oracle runs with deterministic and flaky oracles.

    python benchmarks/bench_bisect.py [--searches 20] [--commits 40] [--seed 1] [--keep DIR]

Builds one repository of ``--commits`` commits (each records its own index), then runs the
real bisect driver (:func:`harness.bisect.driver.run_bisect`: private clone, checkouts,
calibration, the search, the git log, the report) from the first commit to the last, with a
fast oracle instead of ``harness check``: a tiny script that reads the checkout's index and
says "regression" on a commit at or after the search's first bad commit with probability
``show``, and on an earlier one with probability ``alarm``, seeded per search and call. Each
search draws its first bad commit at random. Rows:

- 0%: deterministic (target: every answer right with at most ceil(log2 N) + 4 runs);
- 20% and 40% one-sided: the regression hides in that share of runs (target for 20%: at
  least 19 of 20 right with at most 3x the deterministic runs);
- 10% two-sided: 10% of runs read wrong on either side.

Figures only, no pass/fail; the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.bisect.driver import run_bisect
from harness.bisect.model import REGRESSION_TERMS, BisectRequest
from harness.errors import BisectInputError

ORACLE = """\
import os, pathlib, random, sys
args = sys.argv[1:]
root = pathlib.Path(args[args.index("--root") + 1])
call = pathlib.Path(args[args.index("--json") + 1]).name
index = int((root / "INDEX").read_text())
rng = random.Random(f"{os.environ['BENCH_SEED']}:{call}")
buggy = index >= int(os.environ["BENCH_FIRST_BAD"])
rate = float(os.environ["BENCH_SHOW" if buggy else "BENCH_ALARM"])
sys.exit(1 if rng.random() < rate else 0)
"""

CASES = (  # name, show, false alarm
    ("0%", 1.0, 0.0),
    ("20% one-sided", 0.8, 0.0),
    ("40% one-sided", 0.6, 0.0),
    ("10% two-sided", 0.9, 0.1),
)


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def build_repo(repo: Path, commits: int) -> list[str]:
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    shas = []
    for i in range(commits):
        (repo / "INDEX").write_text(f"{i}\n", encoding="utf-8")
        git(repo, "add", "INDEX")
        git(repo, "commit", "--quiet", "-m", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


def one_search(
    work: Path, shas: list[str], first_bad: int, show: float, alarm: float, seed: str
) -> tuple[bool, int, float, float]:
    """(right, runs, confidence, estimated show rate) of one search."""
    reports = work / "reports" / seed
    request = BisectRequest(
        repo=work / "repo",
        old_ref=shas[0],
        new_ref=shas[-1],
        terms=REGRESSION_TERMS,
        scenario=work / "scenario.yaml",
        factory="unused:f",
        oracle=(sys.executable, str(work / "oracle.py")),
        env=(
            ("BENCH_SEED", seed),
            ("BENCH_FIRST_BAD", str(first_bad)),
            ("BENCH_SHOW", str(show)),
            ("BENCH_ALARM", str(alarm)),
        ),
        report_dir=reports,
    )
    # a flaky bound read as wrong is bad input: the report says so, and it counts as wrong
    with contextlib.suppress(BisectInputError):
        code = run_bisect(request, out=io.StringIO())
        if code >= 128:  # Ctrl-C or SIGTERM reached the driver: stop the benchmark too
            raise SystemExit(code)
    report = json.loads(next(reports.glob("bisect-*/bisect.json")).read_text("utf-8"))
    result = report["result"]
    right = result is not None and result["sha"] == shas[first_bad]
    show_rate = report["flake"]["show_rate"]
    return right, report["oracle"]["runs"], report["confidence"], show_rate or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--keep", type=Path, help="work here and keep the reports")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bisect-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        shas = build_repo(work / "repo", args.commits)
        (work / "oracle.py").write_text(ORACLE, encoding="utf-8")
        (work / "scenario.yaml").write_text("version: 1\n", encoding="utf-8")
        candidates = args.commits - 1
        print(
            f"{args.searches} searches per row over {candidates} candidates; "
            f"ceil(log2 {candidates}) + 4 = {math.ceil(math.log2(candidates)) + 4}"
        )
        print(
            f"{'oracle':<15} {'right':>7} {'mean runs':>9} {'max runs':>8} "
            f"{'mean conf':>9} {'est. show':>9} {'s/search':>8}"
        )
        rng = random.Random(args.seed)
        for name, show, alarm in CASES:
            t0, rows = time.monotonic(), []
            for i in range(args.searches):
                first_bad = rng.randrange(1, args.commits)
                seed = f"{args.seed}-{name}-{i}".replace(" ", "_").replace("%", "pc")
                rows.append(one_search(work, shas, first_bad, show, alarm, seed))
                if not rows[-1][0]:
                    print(f"  wrong: {seed} (first bad c{first_bad})", flush=True)
            runs = [r[1] for r in rows]
            print(
                f"{name:<15} {sum(r[0] for r in rows):>3}/{len(rows):<3} "
                f"{statistics.mean(runs):>9.1f} {max(runs):>8} "
                f"{statistics.mean(r[2] for r in rows):>9.3f} "
                f"{statistics.mean(r[3] for r in rows):>9.2f} "
                f"{(time.monotonic() - t0) / len(rows):>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
