"""The bisect's pure decisions: verdicts to terms, bound calibration, and the noisy search.

Theory of operation
-------------------
The candidates are the commits in ``old..new`` (the new bound included; with
``--first-parent`` only the new bound's first-parent chain), numbered ancestors first;
``History.ancestors[i]`` is a bit mask of candidate ``i`` and its ancestors among them.
Hypothesis ``c`` ("``c`` is the first new commit") says that a commit is in the new state
exactly when ``c`` is that commit or one of its ancestors, as in ``git bisect``. The old bound
is old under every hypothesis, the new bound new.

The oracle may be noisy: a run on a commit with the bug shows it with probability ``show``, a
run on a clean commit with probability ``false_alarm``. Neither is known, so the posterior is
kept over (rates, hypothesis), the rates on a small grid whose prior favours a deterministic
oracle; every run (the calibration runs on the bounds too) multiplies in its likelihood. The
candidates' posterior is the sum over the grid; the estimated rates are posterior means.

Calibration runs each bound once, as a deterministic bisect would; a bound whose runs are not
all as expected runs up to :data:`CALIBRATION_MAX` times (except a clean bound that showed the
regression in its first two runs), to measure the flake rate where the answer is known, and a
buggy bound that never shows the regression, or a clean one that mostly does, is a wrong
bound.

The next commit is the testable one that splits the candidates' probability mass most evenly,
as ``git bisect`` splits their number. While every run agrees that is git's midpoint; once one
candidate is likely, it is the commit next to it whose reading the answer rests on. A run that
hides the regression sends the search to the wrong side for good, and the runs after it
cannot contradict it (with one-sided noise they all agree with the wrong answer): only a
re-test of that commit can. So the prior (see :data:`SHOW_RATES`) is tuned so that a search
whose runs all agree re-tests that commit about twice before one candidate holds
``confidence``.

The search stops when one candidate holds ``confidence`` of the mass (found), when a group of
candidates that only untestable commits separate holds it (ambiguous, like git's "possible
first bad commit"), or when the run budget is spent (uncertain). Nothing here touches git,
processes or clocks.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.bisect.model import CheckMetrics, Observed, Terms, Word

__all__ = [
    "OLD_BOUND",
    "Decision",
    "History",
    "Posterior",
    "bisect_exit",
    "calibration_next",
    "decide",
    "default_max_runs",
    "groups",
    "log_marks",
    "observed_counts",
    "observed_runs",
    "read_check",
    "read_versions",
    "term_of",
    "word_of",
    "wrong_bound",
]

ABORT = 255  # what `git bisect run` reads as "stop"
_WORDS: Mapping[int, Word] = {0: "healthy", 1: "regression", 125: "untestable"}
OLD_BOUND = -1  # the old bound, as a commit index: old under every hypothesis

# (rate, prior weight), tuned with benchmarks/sim_bisect.py (39 candidates, a seeded fake
# oracle): 0.55 on a deterministic oracle, the rest on 0.95-0.5, most on 0.8-0.7. A search
# whose runs all agree then re-tests the commit next to the answer about twice before one
# candidate holds 0.95: 9.3 runs on average and 10 at most, 1.9 more than each bound once plus
# git's midpoints. Each such re-test is what catches a hidden run (a regression that hides in
# 20% of runs is named right in 98% of searches, in 40% of runs in 91%). More weight on the
# flaky rates, or rates below 0.5, costs every deterministic search a third re-test; less
# weight costs right answers.
SHOW_RATES: tuple[tuple[float, float], ...] = (
    (0.999, 0.55),
    *zip(
        (0.95, 0.9, 0.8, 0.7, 0.6, 0.5),
        (0.0543, 0.0776, 0.0931, 0.0931, 0.0776, 0.0543),
        strict=True,
    ),
)
FALSE_ALARM_RATES: tuple[tuple[float, float], ...] = (
    (0.001, 0.9),
    (0.05, 0.1 / 3),
    (0.1, 0.1 / 3),
    (0.2, 0.1 / 3),
)
CALIBRATION_MAX = 6  # runs on a bound whose first runs disagree


# --- one oracle call ----------------------------------------------------------------------


def word_of(oracle_exit: int) -> Word:
    return _WORDS.get(oracle_exit, "error")


def term_of(word: Word, terms: Terms) -> str:
    """The bisect term for an oracle verdict: healthy is the old term when hunting a
    regression and the new one when hunting a fix."""
    if word == "untestable":
        return "skip"
    if word == "error":
        return "abort"
    healthy_term = terms.old if terms.buggy_is_new else terms.new
    unhealthy_term = terms.new if terms.buggy_is_new else terms.old
    return healthy_term if word == "healthy" else unhealthy_term


def bisect_exit(term: str, terms: Terms) -> int:
    """The exit code ``git bisect run`` reads as ``term``."""
    return {terms.old: 0, terms.new: 1, "skip": 125}.get(term, ABORT)


def read_check(data: Mapping[str, Any]) -> CheckMetrics:
    """Per-run metrics from a ``harness check --json`` document (a RegressSummary)."""
    entries = data.get("entries") or []
    if not entries:
        return CheckMetrics()
    runs, verdicts = entries[0]["runs"], entries[0]["verdicts"]
    reasons: list[str] = []
    for verdict in verdicts:
        reasons += [r for r in verdict["reasons"] if r not in reasons]
    return CheckMetrics(
        statuses=tuple(r["status"] for r in runs),
        healthy=tuple(bool(v["healthy"]) for v in verdicts),
        errors=tuple(int(r["errors"]) for r in runs),
        retries=tuple(int(r["retries"]) for r in runs),
        close_wait_growth=tuple(int(r["close_wait_growth"]) for r in runs),
        scenario_s=round(sum(float(r["wall_s"]) for r in runs), 3),
        reasons=tuple(reasons),
    )


VERSION_KEYS = ("openai", "httpx", "httpx2")


def read_versions(data: Mapping[str, Any]) -> dict[str, str]:
    """The openai, httpx and httpx2 versions a ``harness check --json`` document's runs used
    (from the first run's environment fingerprint; ``"absent"`` when not installed); empty
    when no run recorded one."""
    for entry in data.get("entries") or []:
        for run in entry.get("runs") or []:
            env = run.get("environment") or {}
            if env:
                return {key: str(env.get(key, "absent")) for key in VERSION_KEYS}
    return {}


def observed_runs(metrics: CheckMetrics, word: Word) -> tuple[bool, ...]:
    """What the search counts from one call: each testable run (True: the regression
    showed), or, from an oracle that writes no per-run results, its verdict as one run."""
    if word not in ("healthy", "regression"):
        return ()
    pairs = zip(metrics.statuses, metrics.healthy, strict=True)
    runs = tuple(not healthy for status, healthy in pairs if status != "untestable")
    return runs or (word == "regression",)


# --- calibration on the bounds ------------------------------------------------------------


def calibration_next(
    buggy: Sequence[bool], clean: Sequence[bool]
) -> Literal["buggy", "clean"] | None:
    """Which bound to run next (``None``: done). ``buggy``/``clean``: the runs so far on the
    bound that should show the regression and on the one that should not."""
    if not clean:
        return "clean"
    if not buggy:
        return "buggy"
    if not all(buggy) and len(buggy) < CALIBRATION_MAX:
        return "buggy"
    wavering = len(clean) < 2 or not all(clean)  # a clean bound that reads buggy twice is wrong
    if any(clean) and wavering and len(clean) < CALIBRATION_MAX:
        return "clean"
    return None


def wrong_bound(runs: Sequence[bool], *, buggy: bool) -> bool:
    """A buggy bound that never showed the regression, a clean one that mostly did."""
    shown = sum(runs)
    return shown == 0 if buggy else shown * 2 > len(runs)


# --- the candidates and the posterior -------------------------------------------------------


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


@dataclass(frozen=True)
class History:
    """The candidate commits, ancestors first, with ancestor and descendant bit masks."""

    shas: tuple[str, ...]
    ancestors: tuple[int, ...]
    descendants: tuple[int, ...]

    @classmethod
    def from_parents(cls, commits: Sequence[tuple[str, Sequence[str]]]) -> History:
        """``commits``: (sha, parents), every parent before its children; parents outside
        the candidates (at or behind the old bound) are ignored."""
        index: dict[str, int] = {}
        anc: list[int] = []
        children: list[list[int]] = [[] for _ in commits]
        for i, (sha, parents) in enumerate(commits):
            mask = 1 << i
            for p in parents:
                if p in index:
                    mask |= anc[index[p]]
                    children[index[p]].append(i)
            index[sha] = i
            anc.append(mask)
        desc = [0] * len(commits)
        for c in reversed(range(len(commits))):  # children come after their parents
            desc[c] = 1 << c
            for child in children[c]:
                desc[c] |= desc[child]
        return cls(tuple(s for s, _ in commits), tuple(anc), tuple(desc))

    @classmethod
    def linear(cls, shas: Sequence[str]) -> History:
        """A chain: each commit's parent is the one before it."""
        return cls.from_parents([(s, shas[i - 1 : i]) for i, s in enumerate(shas)])

    @property
    def is_linear(self) -> bool:
        """Whether the candidates form one chain (always so with ``--first-parent``)."""
        return all(mask == (2 << i) - 1 for i, mask in enumerate(self.ancestors))

    @property
    def new_bound(self) -> int:
        return len(self.shas) - 1

    def new_mask(self, x: int) -> int:
        """The hypotheses under which commit ``x`` (or the old bound) is in the new state."""
        return 0 if x == OLD_BOUND else self.ancestors[x]

    def is_new(self, x: int, answer: int) -> bool:
        """Whether ``x`` is in the new state when ``answer`` is the first new commit."""
        return bool(self.new_mask(x) >> answer & 1)


@dataclass
class Posterior:
    """Weights over (rate pair, hypothesis); mutable, owned by one search."""

    history: History
    buggy_is_new: bool  # True when hunting a regression, False when hunting a fix
    rates: tuple[tuple[float, float], ...] = field(init=False)
    weights: list[list[float]] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.history.shas)
        pairs = [(s, a) for s, _ in SHOW_RATES for a, _ in FALSE_ALARM_RATES]
        priors = [ps * pa for _, ps in SHOW_RATES for _, pa in FALSE_ALARM_RATES]
        total = sum(priors)
        self.rates = tuple(pairs)
        self.weights = [[p / total / n] * n for p in priors]

    def observe(self, commit: int, shown: bool) -> None:
        """One run at ``commit`` (or :data:`OLD_BOUND`): did the regression show?"""
        mask = self.history.new_mask(commit)
        for (show, alarm), row in zip(self.rates, self.weights, strict=True):
            p_bug = show if shown else 1.0 - show
            p_clean = alarm if shown else 1.0 - alarm
            p_new, p_old = (p_bug, p_clean) if self.buggy_is_new else (p_clean, p_bug)
            for c in range(len(row)):
                row[c] *= p_new if mask >> c & 1 else p_old
        total = sum(map(sum, self.weights))
        self.weights = [[w / total for w in row] for row in self.weights]

    def marginal(self) -> list[float]:
        """P(c is the first new commit), for every candidate."""
        return [sum(col) for col in zip(*self.weights, strict=True)]

    def rate_estimate(self) -> tuple[float, float]:
        """Posterior means of (show, false_alarm)."""
        masses = [sum(row) for row in self.weights]
        show = sum(m * s for m, (s, _) in zip(masses, self.rates, strict=True))
        alarm = sum(m * a for m, (_, a) in zip(masses, self.rates, strict=True))
        return show, alarm

    def splitting_commit(self, skipped: frozenset[int]) -> int | None:
        """The testable commit that splits the candidates' mass most evenly: the one whose
        chance of being in the new state is nearest to 1/2 (git's midpoint, weighted by the
        posterior). On a tie the one nearer the buggy bound, so the half away from it is the
        smaller: an answer there has seen fewer runs show the regression, needs more
        re-tests to confirm, and so gets fewer midpoints."""
        marginal, linear = self.marginal(), self.history.is_linear
        tie = 1e-12 if self.buggy_is_new else -1e-12  # the newer commit wins, or the older
        best, best_gap, below = None, 1.0, 0.0
        for x in range(len(marginal)):
            if linear:  # then a commit's ancestors are the ones before it
                below += marginal[x]
            else:
                below = sum(marginal[c] for c in _bits(self.history.ancestors[x]))
            gap = abs(below - 0.5)
            if x not in skipped and gap <= best_gap + tie:
                best, best_gap = x, gap
        return best


# --- the next step ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What to do next: ``test`` a commit, or stop (``found``, ``ambiguous``, ``uncertain``)."""

    kind: Literal["test", "found", "ambiguous", "uncertain"]
    commit: int = -1  # test: what to run; found/uncertain: the likeliest first new commit
    candidates: tuple[int, ...] = ()  # ambiguous: the group, ancestors first
    confidence: float = 0.0


def groups(history: History, skipped: frozenset[int]) -> list[tuple[int, ...]]:
    """Candidates grouped by what the testable commits can tell about them."""
    testable = (1 << len(history.shas)) - 1
    for x in skipped:
        testable &= ~(1 << x)
    found: dict[int, list[int]] = {}
    for c, desc in enumerate(history.descendants):
        found.setdefault(desc & testable, []).append(c)
    return [tuple(g) for g in found.values()]


def decide(
    posterior: Posterior, skipped: frozenset[int], runs: int, *, confidence: float, max_runs: int
) -> Decision:
    """The next step of the search; see the module docstring."""
    marginal = posterior.marginal()
    top = max(range(len(marginal)), key=marginal.__getitem__)
    if marginal[top] >= confidence:
        return Decision("found", commit=top, confidence=marginal[top])
    if skipped:
        group = max(groups(posterior.history, skipped), key=lambda g: sum(marginal[c] for c in g))
        mass = sum(marginal[c] for c in group)
        if mass >= confidence and len(group) > 1:
            return Decision("ambiguous", candidates=group, confidence=mass)
    x = posterior.splitting_commit(skipped)
    if runs >= max_runs or x is None:
        return Decision("uncertain", commit=top, confidence=marginal[top])
    return Decision("test", commit=x)


def log_marks(
    history: History, tested: Sequence[int], skipped: Collection[int], answer: int
) -> list[tuple[Literal["old", "new", "skip"], int]]:
    """How ``git bisect`` records the conclusion that ``answer`` is the first new commit:
    every tested commit marked with the term the answer gives it (untestable ones skipped),
    the answer last unless it is untestable. ``git bisect`` keeps only the latest new mark,
    so new marks go from the latest commit to the earliest."""
    old: list[int] = []
    new: set[int] = set() if answer in skipped else {answer}
    skip: list[int] = []
    for x in dict.fromkeys(tested):
        if x in skipped:
            skip.append(x)
        elif history.is_new(x, answer):
            new.add(x)
        else:
            old.append(x)
    return [
        *(("old", x) for x in old),
        *(("skip", x) for x in skip),
        *(("new", x) for x in sorted(new, reverse=True)),
    ]


def observed_counts(
    history: History,
    readings: Sequence[tuple[int, Sequence[bool]]],
    answer: int,
    *,
    buggy_is_new: bool,
) -> Observed:
    """Count the runs (``readings``: (commit index, runs), the bounds as :data:`OLD_BOUND`
    and ``history.new_bound``) on commits that have the regression when ``answer`` is the
    first new commit, and on those that do not: what was seen, not what the model infers."""
    counts = [0, 0, 0, 0]  # buggy shown, buggy runs, clean shown, clean runs
    for x, runs in readings:
        buggy = history.is_new(x, answer) == buggy_is_new
        side = 0 if buggy else 2
        counts[side] += sum(runs)
        counts[side + 1] += len(runs)
    return Observed(*counts)


def default_max_runs(candidates: int) -> int:
    """The run budget when ``--max-runs`` is not given: five times a deterministic bisect."""
    return 5 * (math.ceil(math.log2(max(candidates, 2))) + 4)
