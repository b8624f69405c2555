"""Holder values: their wording, their JSON, and how each report shows them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.errors import UsageError
from harness.holders import Holder, describe, row, turns_text
from harness.report.html import render_html
from harness.report.jsonfile import parse_summary, render_json
from harness.report.markdown import render_markdown
from harness.report.text import held_by_lines
from harness.result import LIVE_AFTER_GC, RunResult, ServerStats, SocketSample, held_sample
from harness.result import summarize as summarize_run
from harness.scenario import Expectations
from harness.verdict import RegressEntry, RegressSummary, judge

SHARED = Holder(
    sockets=3,
    close_wait=3,
    established=0,
    objects=1,
    kind="httpx.Client",
    site="gateway/clients.py:42",
    function="create_openai_client",
    stack=("gateway/clients.py:42 in create_openai_client", "harness/gateway.py:162 in open"),
    shared=True,
    turns=(1,),
    shared_clients=1,
    request_clients=11,
    pool="httpcore.ConnectionPool",
)
ABANDONED = Holder(
    sockets=4,
    close_wait=3,
    established=1,
    objects=4,
    kind="httpx2.Client",
    site="app/llm.py:7",
    function="build",
    via="app/llm.py:20 in create_openai_client",
    shared=False,
    turns=(1, 2, 3, 4),
    request_clients=4,
    pool="httpcore2.ConnectionPool",
    pool_site="app/transport.py:3",
)
UNOWNED = Holder(sockets=1, close_wait=1, established=0, objects=0, kind="")


def test_the_issue_s_sentence() -> None:
    assert describe(SHARED) == (
        "3 sockets held by one httpx.Client created at gateway/clients.py:42 in "
        "create_openai_client (shared=True, turn 1), used by 1 shared client and reused by "
        "11 request clients"
    )
    assert SHARED.role == "both"


def test_request_clients_a_helper_and_an_own_transport() -> None:
    assert describe(ABANDONED) == (
        "4 sockets held by 4 httpx2.Clients created at app/llm.py:7 in build called from "
        "app/llm.py:20 in create_openai_client (shared=False, turns 1-4), used by 4 request "
        "clients; its httpcore2.ConnectionPool created at app/transport.py:3"
    )
    assert row(ABANDONED) == (
        "4 (3 CLOSE_WAIT, 1 ESTABLISHED)",
        "4 x httpx2.Client",
        "app/llm.py:7 in build, called from app/llm.py:20 in create_openai_client; "
        "pool at app/transport.py:3",
        "shared=False, turns 1-4",
        "used by 4 request clients",
    )


def test_outside_the_factory_and_unowned() -> None:
    built_at_import = dataclasses.replace(
        SHARED, shared=None, turns=(), shared_clients=0, request_clients=0, other_clients=2
    )
    assert built_at_import.role == "neither"
    assert describe(built_at_import).endswith(
        "(outside the factory), used by 2 OpenAI clients built outside the factory"
    )
    assert describe(UNOWNED) == (
        "1 socket held by no connection pool the attribution saw being created"
    )
    assert row(UNOWNED) == ("1 (1 CLOSE_WAIT, 0 ESTABLISHED)", "no pool seen", "", "", "")


@pytest.mark.parametrize(
    ("turns", "text"),
    [((), ""), ((3,), "turn 3"), ((1, 2, 3), "turns 1-3"), ((1, 3, 7), "turns 1, 3, 7")],
)
def test_turns_text(turns: tuple[int, ...], text: str) -> None:
    assert turns_text(turns) == text


def _result(*held: Holder) -> RunResult:
    samples = [
        SocketSample("start", 0, 0, 5),
        SocketSample("turn 1", 2, 0, 7, turn=1, held_by=(ABANDONED,) if held else ()),
        SocketSample(LIVE_AFTER_GC, 3, 0, 7, held_by=held),
    ]
    return summarize_run(
        scenario="stale",
        variant="keepalive-mutating",
        status="completed",
        records=[],
        samples=samples,
        server=ServerStats(),
        wall_s=1.0,
        environment={},
    )


def _summary(result: RunResult) -> RegressSummary:
    verdict = judge(result, Expectations(close_wait_live_after_gc=0), "fail")
    entry = RegressEntry("stale", result.variant, "", (result,), (verdict,))
    return RegressSummary("r1", "run", "2026-12-07T00:00:00Z", 1.0, (entry,), {})


def test_held_sample_prefers_live_after_gc_then_the_fullest_turn() -> None:
    assert held_sample(_result(SHARED)) == _result(SHARED).samples[2]
    result = _result()
    assert held_sample(result) is None
    turn_only = dataclasses.replace(
        result, samples=(result.samples[0], _result(SHARED).samples[1], result.samples[2])
    )
    assert held_sample(turn_only) == turn_only.samples[1]


def test_results_json_round_trips_and_stays_as_before_without_attribution() -> None:
    summary = _summary(_result(SHARED, UNOWNED))
    text = render_json(summary)
    assert parse_summary(text) == summary
    live = json.loads(text)["entries"][0]["runs"][0]["samples"][2]
    assert live["held_by"][0]["role"] == "both" and live["held_by"][0]["turns"] == [1]
    plain = json.loads(render_json(_summary(_result())))
    assert all("held_by" not in s for s in plain["entries"][0]["runs"][0]["samples"])


def test_results_json_refuses_a_mistyped_holder() -> None:
    data = json.loads(render_json(_summary(_result(SHARED))))
    data["entries"][0]["runs"][0]["samples"][2]["held_by"][0]["sockets"] = "3"
    with pytest.raises(
        UsageError, match=r"samples\[2\]\.held_by\[0\]\.sockets': expected an integer"
    ):
        parse_summary(json.dumps(data), path="r.json")


def test_reports_show_a_held_by_table_only_when_there_is_one() -> None:
    summary = _summary(_result(SHARED))
    markdown = render_markdown(summary)
    assert (
        "Held by:\n\n| variant | sample | sockets | held by | created at | built | used by |"
        in (markdown)
    )
    assert (
        "| keepalive-mutating | live after gc | 3 (3 CLOSE_WAIT, 0 ESTABLISHED) | "
        "1 x httpx.Client | gateway/clients.py:42 in create_openai_client | shared=True, turn 1 "
        "| used by 1 shared client and reused by 11 request clients |"
    ) in markdown
    html = render_html(summary)
    assert "<h3>Held by</h3>" in html
    assert '<td class="l">gateway/clients.py:42 in create_openai_client</td>' in html
    plain = _summary(_result())
    assert "Held by" not in render_markdown(plain) and "Held by" not in render_html(plain)


def test_terminal_lines_name_the_sample_and_the_user_s_frames() -> None:
    assert held_by_lines(_result()) == ""
    assert held_by_lines(_result(SHARED)).splitlines() == [
        "held by (live after gc):",
        f"  {describe(SHARED)}",
        "      gateway/clients.py:42 in create_openai_client",
        "      harness/gateway.py:162 in open",
    ]
    narrow = held_by_lines(_result(SHARED), width=60)
    assert all(len(line) <= 60 for line in narrow.splitlines())
