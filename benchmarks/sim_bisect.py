"""Bisect search figures without git: the pure search against a seeded fake oracle, many seeds.

    python benchmarks/sim_bisect.py [--searches 500] [--candidates 39] [--seed 1] [--confidence P]

Drives :func:`harness.bisect.search.calibration_next`, :func:`~harness.bisect.search.decide`
and :class:`~harness.bisect.search.Posterior` over a linear history as the driver does, with no
git and no processes: a run on a commit at or after the search's first bad commit (drawn at
random) shows the regression with probability ``show``, on an earlier one (the good bound
included) with probability ``alarm``. A search costs milliseconds, so the rows of
``bench_bisect.py`` are measured over hundreds of searches instead of 20; this is what the
priors in :mod:`harness.bisect.search` were tuned with.

Columns: right answers; searches that spent the run budget (``uncertain``); mean, 90th
percentile and maximum runs, bounds included; ``over old``: mean runs over what the driver
cost before the noisy search, each bound once and then ``git bisect run``, whose midpoints are
counted by git's rule (test the commit that splits the candidates most evenly). The first row
is the deterministic oracle with every first bad commit once: exact, no sampling. Figures
only, no pass/fail.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable

from harness.bisect.search import (
    OLD_BOUND,
    Decision,
    History,
    Posterior,
    calibration_next,
    decide,
    default_max_runs,
)

Oracle = Callable[[int], Callable[[int], bool]]  # first bad commit -> one run at a commit

CASES = (  # name, show, false alarm: as in bench_bisect.py
    ("0%", 1.0, 0.0),
    ("20% one-sided", 0.8, 0.0),
    ("40% one-sided", 0.6, 0.0),
    ("10% two-sided", 0.9, 0.1),
)


def search(history: History, run: Callable[[int], bool], confidence: float) -> tuple[Decision, int]:
    """One search as the driver runs it, with ``run(commit)`` as the oracle: (decision, runs)."""
    posterior = Posterior(history, buggy_is_new=True)
    bounds: dict[str, list[bool]] = {"buggy": [], "clean": []}
    while (side := calibration_next(bounds["buggy"], bounds["clean"])) is not None:
        x = history.new_bound if side == "buggy" else OLD_BOUND
        bounds[side].append(run(x))
        posterior.observe(x, bounds[side][-1])
    runs, budget = len(bounds["buggy"]) + len(bounds["clean"]), default_max_runs(len(history.shas))
    while (
        d := decide(posterior, frozenset(), runs, confidence=confidence, max_runs=budget)
    ).kind == "test":
        posterior.observe(d.commit, run(d.commit))
        runs += 1
    return d, runs


def fake_oracle(rng: random.Random, show: float, alarm: float) -> Oracle:
    """Runs with the first bad commit ``truth``: a commit at or after it shows the
    regression with probability ``show``, an earlier one (the good bound, -1, included) with
    ``alarm``."""

    def with_truth(truth: int) -> Callable[[int], bool]:
        return lambda x: rng.random() < (show if x >= truth else alarm)

    return with_truth


def git_midpoints(candidates: int, truth: int) -> int:
    """Commits ``git bisect run`` tests to find ``truth`` among linear candidates."""
    lo, hi, steps = 0, candidates - 1, 0
    while lo < hi:
        x = lo + (hi - lo + 1) // 2 - 1  # the last of the older half
        lo, hi = (lo, x) if truth <= x else (x + 1, hi)
        steps += 1
    return steps


def row(name: str, history: History, truths: list[int], oracle: Oracle, confidence: float) -> str:
    """One line of figures over searches for ``truths`` (each its own first bad commit)."""
    n, right, uncertain, runs, extra = len(history.shas), 0, 0, [], []
    for truth in truths:
        d, used = search(history, oracle(truth), confidence)
        right += d.kind == "found" and d.commit == truth
        uncertain += d.kind == "uncertain"
        runs.append(used)
        extra.append(used - 2 - git_midpoints(n, truth))
    runs.sort()
    return (
        f"{name:<15} {right:>5}/{len(truths):<5} {uncertain:>9} {statistics.mean(runs):>9.2f} "
        f"{runs[len(runs) * 9 // 10]:>4} {runs[-1]:>4} {statistics.mean(extra):>+11.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--candidates", type=int, default=39)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args()
    n = args.candidates
    history = History.linear([f"c{i}" for i in range(n)])
    old = statistics.mean(2 + git_midpoints(n, t) for t in range(n))
    print(
        f"{args.searches} searches per row over {n} candidates, confidence {args.confidence}; "
        f"ceil(log2 {n}) + 4 = {math.ceil(math.log2(n)) + 4}; each bound once + git bisect run: "
        f"{old:.2f} runs on average"
    )
    print(
        f"{'oracle':<15} {'right':>11} {'uncertain':>9} {'mean runs':>9} {'p90':>4} {'max':>4} "
        f"{'over old':>11}"
    )
    every = row("0%, every c", history, list(range(n)), lambda t: lambda x: x >= t, args.confidence)
    print(every)
    for name, show, alarm in CASES:
        rng = random.Random(f"{args.seed}-{name}")
        truths = [rng.randrange(n) for _ in range(args.searches)]
        print(
            row(name, history, truths, fake_oracle(rng, show, alarm), args.confidence), flush=True
        )


if __name__ == "__main__":
    main()
