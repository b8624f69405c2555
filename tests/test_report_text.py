"""Terminal text (harness.report.text): the tables fit the width they are given, and the
commands stay within a 100-column pseudo-terminal."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

import pytest
from _tty import ANSI, run_in_pty

from harness.report import load_summary
from harness.report.text import (
    REGRESS_COLUMNS,
    WIDE,
    check_conclusion,
    fit_table,
    plural,
    regress_opening,
    regress_ranks,
    render_regress,
    wrap,
)
from harness.verdict import RegressSummary

GOLDEN = Path(__file__).parent / "data" / "results.json"


@pytest.fixture(scope="module")
def summary() -> RegressSummary:
    return load_summary(GOLDEN)


def test_wide_is_every_column_and_the_recap(summary: RegressSummary) -> None:
    text = render_regress(summary, WIDE)
    lines = text.splitlines()
    assert lines[1] == (
        "  variant             expect  outcome  errors  retries  sdk retries  cw peak  "
        "cw growth  cw live gc  cw after gc  conns  p95 ms  wall s"
    )
    assert text.endswith(
        "\n\nNot as expected (1):\n"
        "  abandoned-clients / keepalive-mutating: expected fail, got pass: healthy, but "
        "expected fail: no expect: threshold was exceeded\n\n"
        "6 cells, 5 as expected, 1 not, in 11.4 s"
    )


def test_at_80_columns_the_verdict_columns_stay_and_the_recap_wraps(
    summary: RegressSummary,
) -> None:
    text = render_regress(summary, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text == (
        "use-after-close\n"
        "  variant             expect  outcome  errors  retries  cw peak  cw growth\n"
        "  baseline            pass    pass          0        0        0          0\n"
        "  keepalive-mutating  fail    fail          3        0        0          0\n"
        "  keepalive-fixed     pass    pass          0        0        0          0\n"
        "abandoned-clients\n"
        "  variant             expect   outcome  errors  retries  cw peak  cw growth\n"
        "  baseline            fail     fail          0        0        4          4\n"
        "  keepalive-mutating  fail     pass !        0        0        1          1\n"
        "  keepalive-fixed     observe  fail          0        0        4          4\n"
        "\n"
        "Not as expected (1):\n"
        "  abandoned-clients / keepalive-mutating: expected fail, got pass: healthy, but\n"
        "      expected fail: no expect: threshold was exceeded\n"
        "\n"
        "6 cells, 5 as expected, 1 not, in 11.4 s"
    )


def test_the_columns_the_runs_thresholds_bound_outrank_the_others(
    summary: RegressSummary,
) -> None:
    # the golden run bounds close_wait_peak and close_wait_growth; bound live-after-gc instead
    unbound = {"close_wait_peak": None, "close_wait_growth": None, "close_wait_live_after_gc": 0}
    scenarios = {
        k: {**v, "expect": {**v["expect"], **unbound}} for k, v in summary.scenarios.items()
    }
    bounded = dataclasses.replace(summary, scenarios=scenarios)
    header = "  variant             expect  outcome  errors  retries  cw peak  "
    assert render_regress(summary, 80).splitlines()[1] == header + "cw growth"
    assert render_regress(bounded, 80).splitlines()[1] == header + "cw live gc"
    assert regress_ranks(dataclasses.replace(summary, scenarios={})) == [
        c.rank for c in REGRESS_COLUMNS
    ]  # an older results.json without its scenarios: the fixed order


def test_a_name_is_cut_only_when_three_columns_do_not_fit() -> None:
    rows = [["a-very-long-variant-name", "pass", "fail", 3], ["b", "fail", "fail", 0]]
    header = ["variant", "expect", "outcome", "errors"]
    assert fit_table(header, rows, 60) == (
        "variant                   expect  outcome  errors\n"
        "a-very-long-variant-name  pass    fail          3\n"
        "b                         fail    fail          0"
    )
    assert fit_table(header, rows, 30) == (
        "variant        expect  outcome\na-very-long-…  pass    fail\nb              fail    fail"
    )


def test_wording_counts_say_one_and_many() -> None:
    assert [plural(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert regress_opening(1, 1, 1, 1, "") == "regress: 1 cell from 1 scenario, 1 job"
    assert regress_opening(88, 3, 11, 4, "2/3") == (
        "regress: 88 cells from 11 scenarios, 3 runs each, 4 jobs, shard 2/3"
    )
    assert check_conclusion("healthy", "majority", 1) == "check: healthy (1 run)"
    assert check_conclusion("regression", "any", 3) == "check: regression (any of 3 runs)"
    assert wrap("  short", 80) == "  short"
    assert wrap("  " + "word " * 20, 30) == (
        "  word word word word word\n"
        "      word word word word word\n"
        "      word word word word word\n"
        "      word word word word word"
    )


SCENARIO = """\
version: 1
session: {turns: 2}
expect: {errors: 0}
variants: {keepalive-mutating-async: pass, keepalive-fixed: fail}
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for name in ("COLUMNS", "LINES", "GITHUB_STEP_SUMMARY"):
        env.pop(name, None)
    return {**env, "TERM": "xterm"}


REDRAW = re.compile(r"\x1b\[[0-9]*[AK]|\x1b\[\?25[lh]")


def _widest(out: str) -> int:
    """The widest line drawn: a live display's redraws (cursor up, erase line) count as line
    ends; the report folder's path is as long as the user's folders make it."""
    text = ANSI.sub("", REDRAW.sub("\n", out)).replace("\r", "")
    return max(len(line) for line in text.split("\n") if not line.startswith("reports: "))


def test_regress_and_check_fit_a_100_column_terminal(tmp_path: Path) -> None:
    scenario = tmp_path / "s" / "narrow.yaml"
    scenario.parent.mkdir()
    scenario.write_text(SCENARIO)
    argv = [sys.executable, "-m", "harness", "regress", str(scenario.parent), "-j", "2",
            "--report-dir", str(tmp_path / "r")]  # fmt: skip
    code, out = run_in_pty(argv, _env(), columns=100)
    assert code == 1, out
    assert _widest(out) <= 100, out
    text = ANSI.sub("", out).replace("\r", "")
    assert (
        "Not as expected (2):\n  narrow / keepalive-mutating-async: expected pass, got fail:"
        in (text)
    )
    assert "  narrow / keepalive-fixed: expected fail, got pass: healthy, but expected fail:" in (
        text
    )
    code, wide = run_in_pty([*argv, "--wide"], _env(), columns=100)
    assert code == 1 and _widest(wide) > 100  # every column: the table is ~140 wide
    check = [sys.executable, "-m", "harness", "check", "--scenario", str(scenario),
             "--factory", "keepalive-mutating-async"]  # fmt: skip
    code, out = run_in_pty(check, _env(), columns=100)
    assert code == 1, out
    assert _widest(out) <= 100, out
    assert out.replace("\r", "").endswith("check: regression (1 run)\n")


def test_bisect_lines_stay_within_100_columns() -> None:
    from test_bisect_search import _record

    from harness.bisect.render import progress_line

    base = _record(1, 100.0, 2.0, 1.5)
    one = dataclasses.replace(
        base,
        subject="fix: a subject line much longer than any column",
        observed=(True,),
        metrics=dataclasses.replace(
            base.metrics, errors=(3,), retries=(0,), close_wait_growth=(1,)
        ),
    )
    assert progress_line(one) == (
        "step       aaaaaaa  fix: a subj…  regression -> bad  "
        "errors 3 retries 0 CLOSE_WAIT growth 1  (2.0 s)"
    )
    many = dataclasses.replace(
        base,
        metrics=dataclasses.replace(
            base.metrics, errors=(3,) * 9, retries=(0,) * 9, close_wait_growth=(1,) * 9
        ),
    )
    skipped = dataclasses.replace(base, verdict="untestable", term="skip", detail="x " * 80)
    for record in (one, many, skipped):
        assert max(len(line) for line in progress_line(record).splitlines()) <= 100
