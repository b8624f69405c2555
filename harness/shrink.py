"""Shrinking a scenario to its smallest reproducer: pure, the oracle passed in.

Theory of operation
-------------------
The caller gives a scenario that shows the regression and ``run_once(scenario) -> bool``:
one real run through the oracle, True when the run showed it (the verdict, or one chosen
verdict reason; :func:`shows`). :func:`shrink` first calibrates on the scenario as given,
as the bisect calibrates its buggy bound (:mod:`harness.bisect.search`): one run, and more,
up to ``CALIBRATION_MAX``, while not every run showed it; a scenario that never showed it is
not a reproducer (:class:`NotReproduced`).

Then it makes the scenario smaller one field at a time (:data:`FIELDS` says the order: what
costs most first), each candidate judged by real runs; a candidate that keeps the regression
becomes the current scenario. Lists (``server.faults``, ``session.events``) are shrunk by
delta debugging (:func:`ddmin`: everything removed first, then halves, quarters, ... and
single items), then each event left is moved to an earlier turn; numbers by bisection over
the values allowed (:func:`smallest`: the least first, then halving the interval between a
value known to lose the regression and one known to keep it); switches are turned off.
``session.idle_between_turns_ms`` never takes a value within :data:`GAP_GUARD` of
``server.keepalive.idle_timeout_ms``: which side of the server's idle timeout a gap falls on
decides this bug class, and a gap at the timeout races it. The passes repeat until one
changes nothing (a field may shrink further once another has); candidates already judged are
not run again. Last, :data:`VERIFY_RUNS` runs of the result measure how often it shows the
regression.

Flaky regressions: a run that misses on a candidate means either that the candidate lost the
regression or that the run hid it. The bisect's noise model (:class:`~harness.bisect.search.
Posterior` over its grid of show rates, fed every run on a scenario known to keep the
regression) says how likely ``k`` misses in a row are for a scenario that keeps it; a
candidate is run again after a miss until that chance, against an even prior, is below
``1 - confidence`` (:data:`REJECT_CONFIDENCE`), or ``repeats`` runs were spent. One run
that shows it accepts a candidate: a scenario that lost the regression does not show it
(one-sided noise, as the bisect assumes for the bug's own runs). A deterministic
reproducer so costs one run per kept candidate and two or three per lost one; a flaky one
measures its rate as it goes (misses re-run, then shown, feed the posterior).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from harness.bisect.search import CALIBRATION_MAX, History, Posterior, wrong_bound
from harness.planned import planned_duration_s
from harness.result import RunResult
from harness.schema import Scenario
from harness.shrink_fields import (
    FIELDS,
    GAP_GRID,
    GAP_GUARD,
    event_turn,
    fields_of,
    get_value,
    scenario_key,
    show_value,
    values_of,
    with_value,
)
from harness.verdict import Verdict, reason_key

__all__ = [
    "CHECK_CONFIDENCE",
    "FIELDS",
    "FLAKY_CHECK_MIN",
    "GAP_GUARD",
    "REJECT_CONFIDENCE",
    "VERIFY_RUNS",
    "Evidence",
    "NotReproduced",
    "ShrinkResult",
    "Step",
    "ddmin",
    "expected_runs",
    "planned_calls",
    "shows",
    "shrink",
    "smallest",
]

T = TypeVar("T")
RunOnce = Callable[[Scenario], bool]
# How sure misses must make the shrink that a candidate lost the regression. Higher than the
# bisect's 0.95: a wrong "lost it" keeps a field larger for good, and costs a deterministic
# shrink only about two runs more (benchmarks: 16 runs, against 12 at 0.95; an 80% flaky
# regression shrinks to the minimum in 97 of 100 fake-oracle searches, against 68).
REJECT_CONFIDENCE: Final = 0.999
# Runs of the result once the search ends: they measure its show rate, so that a flaky
# regression whose every run during the search showed it is still found to be flaky and the
# file's check line repeats enough. At 80%, the ~9 kept runs of a search and 16 more all show
# it 0.4% of the time (with 8 more, 2%: seen in 1 of 8 benchmark shrinks).
VERIFY_RUNS: Final = 16
CHECK_CONFIDENCE: Final = 0.999  # the check line the file suggests shows a flaky result so
FLAKY_CHECK_MIN: Final = 3  # and repeats at least this often


class NotReproduced(Exception):
    """The scenario as given never showed the regression in its calibration runs."""

    def __init__(self, runs: tuple[bool, ...]) -> None:
        super().__init__(f"showed it in 0 of {len(runs)} runs")
        self.runs = runs


def shows(run: RunResult, verdict: Verdict, reason: str | None) -> bool:
    """Whether one run shows what the shrink keeps: an untestable run shows nothing; else the
    verdict reason keyed ``reason`` (:func:`~harness.verdict.reason_key`), or, with none, an
    unhealthy verdict (``harness check``'s regression)."""
    if run.status == "untestable":
        return False
    if reason is None:
        return not verdict.healthy
    return any(reason_key(r) == reason for r in verdict.reasons)


@dataclass(frozen=True)
class Step:
    """One candidate judged: the field changed, its value before and after, the runs."""

    field: str
    before: str
    after: str
    runs: tuple[bool, ...]  # each run: did it show the regression?
    kept: bool  # the candidate still shows it and became the current scenario
    calls: tuple[int, int]  # planned calls, before and after
    planned_s: tuple[float, float]  # planned waiting (gaps, delays), before and after


@dataclass(frozen=True)
class ShrinkResult:
    initial: Scenario
    final: Scenario
    calibration: tuple[bool, ...]
    steps: tuple[Step, ...]
    verification: tuple[bool, ...]  # runs of the result, after the search
    show_rate: float  # the bisect model's estimate, from every run on a kept scenario
    repeat_needed: int = 1  # runs that all miss with at most 0.1% (Evidence.runs_to_show)

    @property
    def flaky(self) -> bool:
        """Some run missed on a scenario that showed it in another: the regression hides in
        some runs (the calibration's, a kept candidate's, or the verification's)."""
        kept = [self.calibration, self.verification, *(s.runs for s in self.steps if s.kept)]
        return any(not all(runs) for runs in kept)

    @property
    def check_repeat(self) -> int:
        """Runs for ``harness check --policy any`` to show the result with 99.9%: 1 when no
        kept scenario ever missed, else what the noise model predicts (its whole posterior,
        not only the estimated rate, so an uncertain rate asks for more runs), at least
        :data:`FLAKY_CHECK_MIN` (a few lucky runs must not talk the check down to 2)."""
        return max(self.repeat_needed, FLAKY_CHECK_MIN) if self.flaky else 1

    @property
    def runs(self) -> int:
        """Oracle runs, calibration and verification included."""
        steps = sum(len(s.runs) for s in self.steps)
        return len(self.calibration) + steps + len(self.verification)


class Evidence:
    """What the runs so far say about the oracle's noise: the bisect's posterior over show
    rates, fed only runs on scenarios known to keep the regression (one candidate, always
    buggy: hypothesis 0 of a one-commit history)."""

    def __init__(self) -> None:
        self.posterior = Posterior(History.linear(("kept",)), buggy_is_new=True)

    def observe(self, runs: Sequence[bool]) -> None:
        for shown in runs:
            self.posterior.observe(0, shown)

    def miss_chance(self, misses: int) -> float:
        """P(``misses`` runs in a row hide it | the scenario keeps the regression)."""
        masses = [sum(row) for row in self.posterior.weights]
        rates = self.posterior.rates
        return sum(m * (1 - show) ** misses for m, (show, _) in zip(masses, rates, strict=True))

    def runs_to_show(self, confidence: float, most: int = 50) -> int:
        """The fewest runs that show the regression at least once with ``confidence``, for
        a scenario that keeps it (at most ``most``)."""
        return next((n for n in range(1, most) if self.miss_chance(n) <= 1 - confidence), most)

    def lost(self, misses: int, confidence: float) -> bool:
        """Whether ``misses`` misses in a row say, with ``confidence``, that a candidate lost
        the regression (an even prior: as likely kept as lost; a lost one never shows)."""
        p = self.miss_chance(misses)
        return p / (p + 1) <= 1 - confidence


def ddmin(items: Sequence[T], keeps: Callable[[tuple[T, ...]], bool]) -> tuple[T, ...]:
    """Zeller's delta debugging: a 1-minimal subsequence of ``items`` that ``keeps`` (which
    holds for ``items``). The empty one is tried first, then complements of halves,
    quarters, ... down to single items."""
    current, chunks = tuple(items), 2
    if not current or keeps(()):
        return ()
    while len(current) >= 2:
        size = math.ceil(len(current) / chunks)
        for start in range(0, len(current), size):
            rest = current[:start] + current[start + size :]
            if rest and keeps(rest):
                current, chunks = rest, max(chunks - 1, 2)
                break
        else:
            if chunks >= len(current):
                break
            chunks = min(chunks * 2, len(current))
    return current


def smallest(values: Sequence[T], keeps: Callable[[T], bool]) -> T:
    """The least of ``values`` (ascending; ``keeps`` holds for the last) that ``keeps``:
    the first tried first, then bisection between one that loses and one that keeps."""
    lo, hi = 0, len(values) - 1
    if hi == 0 or keeps(values[0]):
        return values[0]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if keeps(values[mid]):
            hi = mid
        else:
            lo = mid
    return values[hi]


def expected_runs(scenario: Scenario, repeats: int) -> int:
    """A rough count of the oracle runs a shrink of ``scenario`` takes, for progress only:
    the calibration, each list's empty try and a few items, each number's bisection, each
    switch (misses of a flaky regression re-run a little), the verification."""
    s = scenario.session
    lists = sum(1 + 2 * len(x) for x in (scenario.server.faults, s.events) if x)
    numbers = sum(
        math.ceil(math.log2(n)) + 1 for n in (s.concurrency, s.turns, s.calls_per_turn) if n > 1
    )
    times = (
        s.idle_between_turns_ms,
        scenario.server.latency_ms,
        scenario.server.reply.chunk_delay_ms,
    )
    numbers += sum(math.ceil(math.log2(GAP_GRID)) + 1 for t in times if t > 0)
    switches = int(s.stream) + int(s.abandon_streams)
    return 1 + math.ceil((lists + numbers + switches) * min(repeats, 2) * 0.6) + VERIFY_RUNS


def planned_calls(scenario: Scenario) -> int:
    s = scenario.session
    return s.turns * s.calls_per_turn * s.concurrency


class _Search:
    """One shrink's state: the current scenario, the evidence, the judged candidates."""

    def __init__(
        self,
        run_once: RunOnce,
        *,
        repeats: int,
        confidence: float,
        on_step: Callable[[Step], None],
        on_start: Callable[[str], None],
    ) -> None:
        self.run_once, self.repeats, self.confidence = run_once, repeats, confidence
        self.on_step, self.on_start = on_step, on_start
        self.evidence = Evidence()
        self.judged: dict[str, bool] = {}
        self.steps: list[Step] = []
        self.current: Scenario | None = None

    def calibrate(self, scenario: Scenario) -> tuple[bool, ...]:
        runs: list[bool] = []
        self.on_start("calibration")
        while not runs or (not all(runs) and len(runs) < CALIBRATION_MAX):
            runs.append(self.run_once(scenario))
        if wrong_bound(runs, buggy=True):
            raise NotReproduced(tuple(runs))
        self.evidence.observe(runs)
        self.current = scenario
        self.judged[scenario_key(scenario)] = True
        return tuple(runs)

    def keeps(self, name: str, candidate: Scenario, before: str, after: str) -> bool:
        """Judge ``candidate`` (``name`` changed from ``before`` to ``after``); adopt it when
        it still shows the regression."""
        key = scenario_key(candidate)
        if key in self.judged:  # judged before: its runs stand
            if self.judged[key]:
                self.current = candidate
            return self.judged[key]
        assert self.current is not None
        self.on_start(f"{name} {before} -> {after}")
        runs: list[bool] = []
        while len(runs) < self.repeats:
            runs.append(self.run_once(candidate))
            if runs[-1] or self.evidence.lost(len(runs), self.confidence):
                break
        kept = runs[-1]
        if kept:
            self.evidence.observe(runs)
        step = Step(
            field=name,
            before=before,
            after=after,
            runs=tuple(runs),
            kept=kept,
            calls=(planned_calls(self.current), planned_calls(candidate)),
            planned_s=(planned_duration_s(self.current), planned_duration_s(candidate)),
        )
        self.steps.append(step)
        self.on_step(step)
        self.judged[key] = kept
        if kept:
            self.current = candidate
        return kept


def _pass(search: _Search, *, first: bool) -> bool:
    """One pass over :data:`FIELDS`; whether it changed the current scenario. Passes after
    the first try each number at its least value only: the bisection found the boundary,
    and only a big step is worth its runs now."""
    assert search.current is not None
    began = search.current
    for name in fields_of(began):
        assert search.current is not None
        start = search.current
        event = event_turn(name)
        if event is not None and int(event.group(1)) >= len(start.session.events):
            continue  # the event is gone
        now = get_value(start, name)
        if isinstance(now, tuple):

            def keeps_list(items: tuple[Any, ...], name: str = name) -> bool:
                cur = search.current
                assert cur is not None
                before = show_value(get_value(cur, name))
                return search.keeps(name, with_value(cur, name, items), before, show_value(items))

            ddmin(now, keeps_list)
        elif isinstance(now, bool):
            if now:
                search.keeps(name, with_value(start, name, False), "true", "false")
        else:

            def keeps_value(value: Any, name: str = name) -> bool:
                cur = search.current
                assert cur is not None
                before = show_value(get_value(cur, name))
                return search.keeps(name, with_value(cur, name, value), before, show_value(value))

            values = values_of(start, name)
            smallest(values if first else sorted({values[0], values[-1]}), keeps_value)
    return scenario_key(search.current) != scenario_key(began)


def shrink(
    scenario: Scenario,
    run_once: RunOnce,
    *,
    repeats: int = 3,
    confidence: float = REJECT_CONFIDENCE,
    on_step: Callable[[Step], None] = lambda step: None,
    on_start: Callable[[str], None] = lambda what: None,
    on_runs: Callable[[str, tuple[bool, ...]], None] = lambda what, runs: None,
    verify: int = VERIFY_RUNS,
) -> ShrinkResult:
    """The smallest scenario found that still shows what ``run_once`` looks for.

    ``repeats`` bounds the runs per candidate. ``on_start(what)`` is called before each
    candidate's runs, ``on_step(step)`` after them; before and after the calibration's and
    the verification's, ``on_start("calibration")`` and ``on_runs("calibration", runs)``
    (and so for ``"verification"``: ``verify`` runs of the result, which measure its show
    rate). Raises :class:`NotReproduced` when ``scenario`` itself does not show it.
    """
    search = _Search(
        run_once, repeats=repeats, confidence=confidence, on_step=on_step, on_start=on_start
    )
    calibration = search.calibrate(scenario)
    on_runs("calibration", calibration)
    changed = _pass(search, first=True)
    while changed:
        changed = _pass(search, first=False)
    assert search.current is not None
    on_start("verification")
    verification = tuple(run_once(search.current) for _ in range(verify))
    on_runs("verification", verification)
    if any(verification):
        search.evidence.observe(verification)
    show_rate, _ = search.evidence.posterior.rate_estimate()
    return ShrinkResult(
        initial=scenario,
        final=search.current,
        calibration=calibration,
        steps=tuple(search.steps),
        verification=verification,
        show_rate=show_rate,
        repeat_needed=search.evidence.runs_to_show(CHECK_CONFIDENCE),
    )
