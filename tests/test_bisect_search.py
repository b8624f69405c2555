"""The bisect's pure decisions, without git: terms, calibration, the noisy search, the report.

The search is driven by a seeded fake oracle: a commit at or after ``truth`` has the bug and
shows it with probability ``show``; a clean commit shows it with probability ``alarm``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.bisect.git import BisectOutcome, parse_bisect_log
from harness.bisect.model import (
    FIX_TERMS,
    REGRESSION_TERMS,
    BisectRequest,
    Bound,
    CheckMetrics,
    Commit,
    Observed,
    Outcome,
    Role,
    Status,
    StepRecord,
    Terms,
)
from harness.bisect.render import progress_line, render_markdown
from harness.bisect.report import BisectReport, expected_steps, overheads
from harness.bisect.search import (
    OLD_BOUND,
    Decision,
    History,
    Posterior,
    bisect_exit,
    calibration_next,
    decide,
    default_max_runs,
    groups,
    log_marks,
    observed_runs,
    read_check,
    term_of,
    wrong_bound,
)

# --- one oracle call --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "terms", "term", "code"),
    [
        ("healthy", REGRESSION_TERMS, "good", 0),
        ("regression", REGRESSION_TERMS, "bad", 1),
        ("healthy", FIX_TERMS, "fixed", 1),  # healthy is the NEW term when hunting a fix
        ("regression", FIX_TERMS, "broken", 0),
        ("untestable", REGRESSION_TERMS, "skip", 125),
        ("untestable", FIX_TERMS, "skip", 125),
        ("error", FIX_TERMS, "abort", 255),
    ],
)
def test_verdicts_map_to_terms_and_git_bisect_run_exit_codes(
    word: Any, terms: Terms, term: str, code: int
) -> None:
    assert term_of(word, terms) == term
    assert bisect_exit(term, terms) == code


def _check_doc(healthy: list[bool], statuses: list[str]) -> dict[str, Any]:
    runs = [
        {"status": s, "errors": 0 if h else 9, "retries": 1, "close_wait_growth": 2, "wall_s": 0.5}
        for h, s in zip(healthy, statuses, strict=True)
    ]
    verdicts = [{"healthy": h, "reasons": [] if h else ["errors 9 > 0"]} for h in healthy]
    return {"command": "check", "entries": [{"runs": runs, "verdicts": verdicts}]}


def test_read_check_observed_runs_and_disagreeing() -> None:
    metrics = read_check(
        _check_doc(
            [False, True, False, False], ["completed", "completed", "completed", "untestable"]
        )
    )
    assert metrics == CheckMetrics(
        statuses=("completed", "completed", "completed", "untestable"),
        healthy=(False, True, False, False),
        errors=(9, 0, 9, 9),
        retries=(1, 1, 1, 1),
        close_wait_growth=(2, 2, 2, 2),
        scenario_s=2.0,
        reasons=("errors 9 > 0",),
    )
    assert observed_runs(metrics, "regression") == (True, False, True)  # untestable: no vote
    for verdict, disagree in (("regression", 1), ("healthy", 2)):
        observed = observed_runs(metrics, verdict)
        record = dataclasses.replace(_record(1, 0.0, 1.0, 1.0), verdict=verdict, observed=observed)
        assert record.disagree == disagree
    assert observed_runs(metrics, "untestable") == ()
    # an oracle without per-run results counts as one run of its verdict
    assert observed_runs(CheckMetrics(), "regression") == (True,)
    assert observed_runs(CheckMetrics(), "healthy") == (False,)
    assert read_check({"entries": []}) == CheckMetrics()


# --- calibration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buggy", "clean", "next_side"),
    [
        ([], [], "clean"),
        ([], [False], "buggy"),
        ([True], [False], None),  # deterministic: each bound once
        ([False], [False], "buggy"),  # the regression hid: estimate how often
        ([True, False], [False], "buggy"),
        ([True, False, True, True, False, True], [False], None),
        ([False] * 6, [False], None),  # never showed: a wrong bound
        ([], [True], "buggy"),
        ([True], [True], "clean"),
        ([True], [True, True], None),  # wrong, not flaky: no need to insist
        ([True], [True, False], "clean"),
        ([True], [True, False, False, False, False, False], None),
    ],
)
def test_calibration_runs_each_bound_once_and_more_when_it_wavers(
    buggy: list[bool], clean: list[bool], next_side: str | None
) -> None:
    assert calibration_next(buggy, clean) == next_side


def test_wrong_bounds() -> None:
    assert wrong_bound([False] * 6, buggy=True)
    assert not wrong_bound([False] * 5 + [True], buggy=True)
    assert wrong_bound([True, True, False, True], buggy=False)
    assert not wrong_bound([True, False, False, False], buggy=False)


# --- the candidates ---------------------------------------------------------------------------


def _dag() -> History:
    """a - b - m(b, s2) - d with a side branch a - s1 - s2 (old bound is a's parent)."""
    return History.from_parents(
        [
            ("a", ["root"]),
            ("b", ["a"]),
            ("s1", ["a"]),
            ("s2", ["s1"]),
            ("m", ["b", "s2"]),
            ("d", ["m"]),
        ]
    )


def test_history_masks_follow_ancestry() -> None:
    h = _dag()
    a, b, s1, s2, m, d = range(6)
    assert h.ancestors[m] == sum(1 << i for i in (a, b, s1, s2, m))
    assert h.descendants[s1] == sum(1 << i for i in (s1, s2, m, d))
    assert h.is_new(b, a) and not h.is_new(b, s1) and h.is_new(m, s1)
    assert not h.is_new(OLD_BOUND, a)
    assert h.new_bound == d
    line = History.linear(["x", "y", "z"])
    assert line.ancestors == (0b001, 0b011, 0b111)


def test_untestable_commits_merge_groups() -> None:
    h = History.linear([f"c{i}" for i in range(6)])
    assert groups(h, frozenset()) == [(i,) for i in range(6)]
    # c2 untestable: "c2 first" and "c3 first" differ only at c2
    assert groups(h, frozenset({2})) == [(0,), (1,), (2, 3), (4,), (5,)]


# --- the search with a seeded fake oracle -----------------------------------------------------


def _search(
    n: int,
    truth: int,
    rng: random.Random,
    *,
    show: float = 1.0,
    alarm: float = 0.0,
    untestable: frozenset[int] = frozenset(),
    confidence: float = 0.95,
    max_runs: int | None = None,
    fix: bool = False,
) -> tuple[Decision, int, Posterior]:
    """A regression search, or with ``fix`` a fix search: the commits before ``truth`` (the
    old bound included) have the bug, and ``truth`` is the first fixed one."""
    history = History.linear([f"c{i}" for i in range(n)])
    posterior = Posterior(history, buggy_is_new=not fix)
    buggy_bound, clean_bound = (
        (OLD_BOUND, history.new_bound) if fix else (history.new_bound, OLD_BOUND)
    )

    def run(x: int) -> bool:
        buggy = x < truth if fix else x >= truth
        return rng.random() < (show if buggy else alarm)

    buggy_runs: list[bool] = []
    clean_runs: list[bool] = []
    while (side := calibration_next(buggy_runs, clean_runs)) is not None:
        x = buggy_bound if side == "buggy" else clean_bound
        shown = run(x)
        (buggy_runs if side == "buggy" else clean_runs).append(shown)
        posterior.observe(x, shown)
    runs, skipped = len(buggy_runs) + len(clean_runs), set[int]()
    budget = max_runs or default_max_runs(n)
    while True:
        d = decide(posterior, frozenset(skipped), runs, confidence=confidence, max_runs=budget)
        if d.kind != "test":
            return d, runs, posterior
        runs += 1
        if d.commit in untestable:
            skipped.add(d.commit)
        else:
            posterior.observe(d.commit, run(d.commit))


@pytest.mark.parametrize("fix", [False, True])
def test_deterministic_oracle_costs_at_most_log2_plus_4_runs_and_two_over_git(fix: bool) -> None:
    runs = []
    for truth in range(39):
        decision, used, posterior = _search(39, truth, random.Random(0), fix=fix)
        assert (decision.kind, decision.commit) == ("found", truth)
        assert decision.confidence >= 0.95
        assert posterior.rate_estimate()[0] > 0.9
        runs.append(used)
    assert max(runs) == expected_steps(39) + 4
    # each bound once and git bisect run's midpoints (a balanced split: 25 of the 39 answers
    # take 5, 14 take 6) cost 2 * 39 + 209 = 287 runs; the re-tests next to the answer, which
    # catch a run that hid the regression, cost 74 more: 1.9 per search
    assert sum(runs) == 287 + 74


def test_one_sided_flaky_oracle_is_named_right() -> None:
    rng, right = random.Random(7), 0
    for _ in range(40):  # the regression shows in 80% of runs on a commit that has it
        truth = rng.randrange(39)
        decision, _, _ = _search(39, truth, rng, show=0.8)
        right += decision.kind == "found" and decision.commit == truth
    assert right >= 38


def test_two_sided_noise_estimates_both_rates() -> None:
    rng, right, runs, alarms = random.Random(3), 0, 0, []
    for _ in range(20):  # 10% of runs read wrong, on either side
        truth = rng.randrange(20)
        decision, used, posterior = _search(20, truth, rng, show=0.9, alarm=0.1)
        right += decision.kind == "found" and decision.commit == truth
        runs += used
        alarms.append(posterior.rate_estimate()[1])
    assert right >= 15  # weaker than one-sided noise: see docs/bisect.md
    assert runs / 20 > expected_steps(20) + 4  # noise costs runs
    assert 0.03 < sum(alarms) / 20 < 0.2


def test_untestable_neighbour_leaves_an_ambiguous_pair() -> None:
    decision, _, _ = _search(16, 9, random.Random(1), untestable=frozenset({9}))
    assert (decision.kind, decision.candidates) == ("ambiguous", (9, 10))
    assert decision.confidence >= 0.95


def test_budget_ends_the_search_uncertain() -> None:
    decision, runs, _ = _search(39, 20, random.Random(2), show=0.5, max_runs=8)
    assert decision.kind == "uncertain" and runs == 8
    assert 0.0 < decision.confidence < 0.95


def test_fix_search_reads_healthy_as_new() -> None:
    history = History.linear(["a", "b", "c", "d"])
    posterior = Posterior(history, buggy_is_new=False)
    for x, shown in ((OLD_BOUND, True), (3, False), (3, False), (1, True), (2, False)):
        posterior.observe(x, shown)  # broken up to b, fixed from c
    marginal = posterior.marginal()
    assert max(range(4), key=marginal.__getitem__) == 2


def test_log_marks_leave_the_answer_as_the_last_new_mark() -> None:
    h = History.linear([f"c{i}" for i in range(10)])
    # tested in search order: 5 (new), 8 (new), 2 (old), 3 untestable, 4 (new), 4 again
    assert log_marks(h, [5, 8, 2, 3, 4, 4], {3}, 4) == [
        ("old", 2),
        ("skip", 3),
        ("new", 8),
        ("new", 5),
        ("new", 4),
    ]
    # an untestable answer (an ambiguous pair) is not claimed
    assert log_marks(h, [2, 5], {3}, 3) == [("old", 2), ("new", 5)]
    # a DAG: the answer is marked even when only its descendants were tested
    dag = _dag()
    assert log_marks(dag, [5, 1], set(), 2) == [("old", 1), ("new", 5), ("new", 2)]


# --- the report -------------------------------------------------------------------------------


def _record(index: int, started: float, step_s: float, scenario_s: float) -> StepRecord:
    return StepRecord(
        index=index,
        role=Role.STEP,
        sha="a" * 40,
        short="aaaaaaa",
        subject="c1: change | 1",
        oracle_exit=1,
        verdict="regression",
        term="bad",
        bisect_exit=1,
        observed=(True, False),
        metrics=CheckMetrics(
            statuses=("completed", "completed"),
            healthy=(False, True),
            errors=(3, 0),
            retries=(0, 0),
            close_wait_growth=(1, 0),
            scenario_s=scenario_s,
            reasons=("errors 3 > 0",),
        ),
        install_s=0.0,
        oracle_s=step_s,
        step_s=step_s,
        started=started,
        finished=started + step_s,
        files={"check_json": "steps/001-aaaaaaa.check.json"},
    )


def _report() -> BisectReport:
    commit = Commit("a" * 40, "aaaaaaa", "c1", "Dev <d@example.com>", "2026-01-01T00:00:00+00:00")
    request = BisectRequest(
        repo=Path("/r"),
        old_ref="v1",
        new_ref="v2",
        terms=REGRESSION_TERMS,
        scenario=Path("/s.yaml"),
        factory="gateway/factory.py:create_openai_client",
        oracle=("python", "-m", "harness", "check"),
        repeat=2,
        policy="any",
        env=(("HOME", "/tmp/h"),),
        first_parent=True,
        max_runs=35,
    )
    return BisectReport(
        id="bisect-x",
        started="2026-01-01T00:00:00+00:00",
        request=request,
        old=Bound("--good", "v1", "1" * 40),
        new=Bound("--bad", "v2", "2" * 40),
        candidates=5,
        outcome=Outcome(
            status=Status.FOUND,
            exit_code=0,
            message="first bad commit: aaa",
            result=commit,
            confidence=0.97,
            show_rate=0.8,
            false_alarm_rate=0.01,
        ),
        steps=(_record(1, 100.0, 2.0, 1.5), _record(2, 102.5, 3.0, 1.0)),
        timings={"clone_s": 0.1, "bounds_s": 4.0, "bisect_s": 4.5, "wall_s": 9.0},
    )


def test_report_round_trips_and_derives_figures() -> None:
    report = _report()
    data = json.loads(json.dumps(report.to_dict()))
    assert BisectReport.from_dict(data) == report
    assert data["runs_per_commit"] == [
        {"sha": "a" * 40, "short": "aaaaaaa", "calls": 2, "runs": 4, "unhealthy": 2}
    ]
    assert data["flake"] == {"observed": None, "show_rate": 0.8, "false_alarm_rate": 0.01}
    assert data["oracle"] == {
        "command": ["python", "-m", "harness", "check"],
        "calls": 2,
        "bisect_calls": 2,
        "runs": 4,
    }
    assert data["timings"]["overhead_per_step_s"] == [2.5]  # 0.5 s between + 2.0 s beyond
    assert overheads(report.steps) == [2.5]
    assert [expected_steps(n) for n in (1, 2, 3, 26, 32, 33)] == [0, 1, 2, 5, 5, 6]


def test_a_bound_record_is_labelled_by_its_term_and_status_is_written_as_text() -> None:
    report = _report()
    bound = replace(report.steps[0], role=Role.BOUND, bound_term="good")
    report = replace(report, steps=(bound, *report.steps[1:]))
    text = json.dumps(report.to_dict(), indent=2)
    data = json.loads(text)
    assert list(data["steps"][0])[:3] == ["index", "label", "sha"]  # bisect.json's key order
    assert [s["label"] for s in data["steps"]] == ["good bound", "step"]
    assert data["bounds"]["old"]["record"]["label"] == "good bound"
    assert data["bounds"]["new"]["record"] is None
    assert data["oracle"]["bisect_calls"] == 1
    assert '"status": "found"' in text
    back = BisectReport.from_dict(data)
    assert back == report
    assert (back.outcome.status, back.steps[0].role, back.steps[1].role) == (
        Status.FOUND,
        Role.BOUND,
        Role.STEP,
    )


def test_progress_line_and_markdown() -> None:
    report = _report()
    assert progress_line(report.steps[0]) == (
        "step       aaaaaaa  c1: change | 1  regression -> bad\n"
        "           errors 3,0 retries 0,0 CLOSE_WAIT growth 1,0  disagree 1/2  (2.0 s)"
    )
    text = render_markdown(report)
    assert (
        "| 1 | step | `aaaaaaa` | c1: change \\| 1 | regression | bad | 3,0 | 0,0 | 1,0 "
        "| 1/2 | - | - | 2.00 |" in text
    )
    assert "- status: found (exit 0); confidence 0.970 (target 0.95, at most 35 runs)" in text
    assert (
        "- estimated by the model, not observed: the regression shows in 80% of runs on a "
        "commit that has it, and in 1% on one that does not"
    ) in text
    assert "| `aaaaaaa` | 2 | 4 | 2 |" in text
    assert "- repeat 2, policy any; submodules: auto; env: `HOME=/tmp/h`; first parent only" in text
    assert "- oracle calls: 2 (0 on the bounds, 2 in the search; 4 runs); ceil(log2(5)) = 3" in text


def test_the_report_writes_env_pairs_redacted() -> None:
    report = _report()
    env = (("HOME", "/tmp/h"), ("GATEWAY_TOKEN", "tok-1234567890"), ("MODE", "fast"))
    report = replace(report, request=replace(report.request, env=env))
    data = report.to_dict()
    assert data["env"] == {"HOME": "/tmp/h", "MODE": "<redacted>"}
    assert "; env: `HOME=/tmp/h`; env: `MODE=<redacted>`;" in render_markdown(report)
    assert "GATEWAY_TOKEN" not in json.dumps(data) + render_markdown(report)


def test_report_with_the_newer_fields_round_trips_and_an_older_file_still_loads() -> None:
    older = _report()
    newer = replace(
        older,
        request=replace(older.request, submodules="skip", install_always=True),
        outcome=replace(older.outcome, observed=Observed(4, 4, 0, 1)),
        steps=tuple(
            replace(r, install="ran", packages={"openai": "2.31.0", "httpx": "0.28.1"})
            for r in older.steps
        ),
        timings={**older.timings, "venv_s": 1.5},
        warnings=("note: 1 tracked file in /r has uncommitted changes; ...",),
        unfetched_submodules=({"name": "v", "path": "v", "url": "/gone", "cause": "fatal: x"},),
    )
    data = json.loads(json.dumps(newer.to_dict()))
    assert BisectReport.from_dict(data) == newer
    assert data["flake"]["observed"] == {
        "buggy_shown": 4,
        "buggy_runs": 4,
        "clean_shown": 0,
        "clean_runs": 1,
    }
    assert data["steps"][0]["packages"] == {"openai": "2.31.0", "httpx": "0.28.1"}
    text = render_markdown(newer)
    assert text.splitlines()[2] == "> note: 1 tracked file in /r has uncommitted changes; ..."
    assert (
        "- observed: the regression showed in 4 of 4 runs on commits that have it (by this "
        "answer) and in 0 of 1 on commits that do not"
    ) in text
    assert "| ran | 2.31.0 / 0.28.1 / ? | 2.00 |" in text
    assert "- submodule `v` (/gone) could not be fetched; tested without it: fatal: x" in text
    # a bisect.json written before these fields existed
    old_data = json.loads(json.dumps(older.to_dict()))
    for key in ("submodules", "install_always", "warnings", "unfetched_submodules"):
        del old_data[key]
    del old_data["flake"]["observed"]
    for step in old_data["steps"]:
        del step["install"], step["packages"]
    assert BisectReport.from_dict(old_data) == older


LOG_FOUND = """\
git bisect start '--term-old=broken' '--term-new=fixed' 'abc' 'def'
# fixed: [ff0f0243a15f46e8da603b386253b7e748a15cb1] c2
git bisect fixed ff0f0243a15f46e8da603b386253b7e748a15cb1
# first fixed commit: [ff0f0243a15f46e8da603b386253b7e748a15cb1] c2
"""

LOG_SKIPPED = """\
# skip: [274c725b9c8c9e837877f5e7ba6d13eb0b3ef628] c5
git bisect skip 274c725b9c8c9e837877f5e7ba6d13eb0b3ef628
# only skipped commits left to test
# possible first bad commit: [c147d23ebe55f3ffb72bd986dedac20df7f28963] c7
# possible first bad commit: [274c725b9c8c9e837877f5e7ba6d13eb0b3ef628] c5
"""


def test_parse_bisect_log() -> None:
    assert parse_bisect_log(LOG_FOUND, FIX_TERMS) == BisectOutcome(
        kind="found", sha="ff0f0243a15f46e8da603b386253b7e748a15cb1"
    )
    assert parse_bisect_log(LOG_SKIPPED, REGRESSION_TERMS) == BisectOutcome(
        kind="skipped",
        candidates=(
            "c147d23ebe55f3ffb72bd986dedac20df7f28963",
            "274c725b9c8c9e837877f5e7ba6d13eb0b3ef628",
        ),
    )
    assert parse_bisect_log(LOG_FOUND, REGRESSION_TERMS).kind == "unfinished"
    assert parse_bisect_log("", REGRESSION_TERMS) == BisectOutcome(kind="unfinished")
