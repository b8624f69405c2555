"""report --merge: shards and SDK lines back into one report, refusing gaps and overlaps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from _cells import cell

from harness.cli import main
from harness.errors import UsageError
from harness.report import load_summary, render_json
from harness.report.compare import compare, render_comparison
from harness.report.merge import merge, sdk_line
from harness.scenario import parse_scenario
from harness.shard import Shard
from harness.verdict import RegressSummary

ALPHA = parse_scenario(
    "version: 1\nname: alpha\nvariants: {baseline: pass, keepalive-fixed: pass}\n"
)
BETA = parse_scenario("version: 1\nname: beta\nvariants: {keepalive-fixed: pass, baseline: pass}\n")
SETTINGS = {s.name: s.to_dict() for s in (ALPHA, BETA)}


def _summary(
    cells: list[tuple[str, str]],
    *,
    openai: str = "3.54.0",
    shard: Shard | None = None,
    started: str = "2026-11-25T10:00:00+00:00",
    wall_s: float = 2.0,
) -> RegressSummary:
    return RegressSummary(
        run_id=f"20261125T100000000Z-regress-{openai}",
        command="regress",
        started=started,
        wall_s=wall_s,
        entries=tuple(cell(s, v) for s, v in cells),
        environment={"python": "3.11.7", "openai": openai},
        scenarios=SETTINGS,
        shard=shard,
    )


def _ids(command: str) -> str:
    return f"20261125T120000000Z-{command}"


def test_shards_merge_in_scenario_then_variant_order() -> None:
    one = _summary([("beta", "baseline"), ("alpha", "keepalive-fixed")], shard=Shard(1, 2))
    two = _summary(
        [("beta", "keepalive-fixed"), ("alpha", "baseline")],
        shard=Shard(2, 2),
        started="2026-11-25T09:59:00+00:00",
        wall_s=3.5,
    )
    merged = merge([("one.json", one), ("two.json", two)], new_run_id=_ids)
    assert [(e.scenario, e.variant, e.line) for e in merged.entries] == [
        ("alpha", "baseline", ""),
        ("alpha", "keepalive-fixed", ""),
        ("beta", "keepalive-fixed", ""),
        ("beta", "baseline", ""),
    ]
    assert (merged.run_id, merged.command, merged.shard) == (_ids("regress"), "regress", None)
    assert (merged.started, merged.wall_s, merged.ok) == ("2026-11-25T09:59:00+00:00", 3.5, True)
    assert merged.environment == {"python": "3.11.7", "openai": "3.54.0"}
    assert merged.lines == ()


def test_sdk_lines_are_tagged_and_survive_the_json_round_trip() -> None:
    cells = [("alpha", "baseline")]
    merged = merge(
        [("3.json", _summary(cells)), ("2.json", _summary(cells, openai="2.31.0"))],
        new_run_id=_ids,
    )
    assert [e.key for e in merged.entries] == [
        ("alpha", "baseline", "3"),
        ("alpha", "baseline", "2"),
    ]
    assert [e.label for e in merged.entries] == ["baseline [openai 3]", "baseline [openai 2]"]
    assert merged.lines == ("3", "2")
    assert merged.environment["openai"] == "2.31.0, 3.54.0"
    data = json.loads(render_json(merged))
    assert [e["line"] for e in data["entries"]] == ["3", "2"]
    assert "shard" not in data
    # A one-line summary writes no "line" key at all: older readers see the old shape.
    assert "line" not in json.loads(render_json(_summary(cells)))["entries"][0]


def test_merge_refuses_gaps_overlaps_and_conflicts() -> None:
    cells = [("alpha", "baseline")]
    with pytest.raises(UsageError, match=r"^b.json: cell alpha / baseline is also in a.json;"):
        merge([("a.json", _summary(cells)), ("b.json", _summary(cells))], new_run_id=_ids)
    with pytest.raises(UsageError, match=r"^shard 2, 3 of 3 on openai 3 missing; pass every shard"):
        merge([("a.json", _summary(cells, shard=Shard(1, 3)))], new_run_id=_ids)
    with pytest.raises(UsageError, match=r"^shards on openai 2 were split different ways"):
        merge(
            [
                ("a.json", _summary(cells, openai="2.1.0", shard=Shard(1, 2))),
                ("b.json", _summary([("beta", "baseline")], openai="2.1.0", shard=Shard(1, 3))),
                ("c.json", _summary([("beta", "baseline")])),
            ],
            new_run_id=_ids,
        )
    other = RegressSummary(
        **{**_summary([("beta", "baseline")]).__dict__, "scenarios": {"alpha": {}}}
    )
    with pytest.raises(
        UsageError, match=r"^b.json: scenario 'alpha' has other settings than in a.json"
    ):
        merge([("a.json", _summary(cells)), ("b.json", other)], new_run_id=_ids)
    assert sdk_line({"openai": "absent"}) == ""
    assert sdk_line({"openai": "1.109.1"}) == "1"
    assert sdk_line({"openai": "2.31.0, 3.54.0"}) == ""


def test_report_merge_command_writes_one_report_and_exits_by_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _summary([("alpha", "baseline")], shard=Shard(1, 2))
    bad = RegressSummary(
        **{
            **_summary([("alpha", "keepalive-fixed")], shard=Shard(2, 2)).__dict__,
            "entries": (cell("alpha", "keepalive-fixed", errors=3),),
        }
    )
    paths = []
    for name, summary in (("one", one), ("two", bad)):
        path = tmp_path / f"{name}.json"
        path.write_text(render_json(summary))
        paths.append(str(path))
    assert main(["report", "--merge", *paths, "--out", str(tmp_path / "out")]) == 1
    printed = capsys.readouterr()
    run_dir = Path(printed.out.strip())
    assert printed.err.startswith("Not as expected (1):\n  alpha / keepalive-fixed: expected pass")
    merged = load_summary(run_dir / "results.json")
    assert [(e.variant, e.as_expected) for e in merged.entries] == [
        ("baseline", True),
        ("keepalive-fixed", False),
    ]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "junit.xml",
        "report.html",
        "results.json",
        "summary.md",
    ]
    assert main(["report", paths[0], paths[1]]) == 2
    assert capsys.readouterr().err == (
        "harness report: error: 2 results files given; pass --merge to combine\n"
    )
    assert main(["report", "--merge", paths[0], "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "harness report: error: shard 2 of 2 on openai 3 missing; pass every shard's results.json\n"
    )


def test_real_shards_merge_into_the_whole_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name, turns in (("short", 1), ("long", 3)):
        (folder / f"{name}.yaml").write_text(
            f"version: 1\nsession: {{turns: {turns}, idle_between_turns_ms: 20}}\n"
            "expect: {errors: 0}\nvariants: {baseline: pass, keepalive-fixed: pass}\n"
        )
    results = []
    for shard in ("1/2", "2/2"):
        out = tmp_path / f"shard{shard[0]}"
        code = main(["regress", str(folder), "--shard", shard, "-j", "1", "--report-dir", str(out)])
        assert code == 0
        assert f"regress: 2 cells from 2 scenarios, 1 job, shard {shard}\n" in (
            capsys.readouterr().out
        )
        results.append(str(out / "latest" / "results.json"))
        assert load_summary(out / "latest" / "results.json").shard == Shard(int(shard[0]), 2)
    assert main(["report", "--merge", *results, "--out", str(tmp_path / "merged")]) == 0
    merged = load_summary(Path(capsys.readouterr().out.strip()) / "results.json")
    assert [(e.scenario, e.variant, e.as_expected) for e in merged.entries] == [
        ("long", "baseline", True),
        ("long", "keepalive-fixed", True),
        ("short", "baseline", True),
        ("short", "keepalive-fixed", True),
    ]


def test_compare_understands_sdk_lines() -> None:
    cells = [("alpha", "baseline")]
    compat = merge(
        [("3.json", _summary(cells)), ("2.json", _summary(cells, openai="2.31.0"))],
        new_run_id=_ids,
    )
    worse_on_2 = dataclasses.replace(
        compat,
        entries=(
            compat.entries[0],
            dataclasses.replace(cell("alpha", "baseline", errors=3), line="2"),
        ),
    )
    result = compare(compat, worse_on_2)
    assert [(c.variant, c.change) for c in result.cells] == [
        ("baseline [openai 3]", "unchanged"),
        ("baseline [openai 2]", "worse"),
    ]
    assert "WORSE     alpha / baseline [openai 2]: errors 0 -> 3;" in render_comparison(result)
    # A one-line BASE (openai 3) matches the openai 3 cells of a compat NEW.
    single = compare(_summary(cells), worse_on_2)
    assert [(c.variant, c.change) for c in single.cells] == [
        ("baseline [openai 3]", "unchanged"),
        ("baseline [openai 2]", "added"),
    ]
    # Two one-line reports on different openai versions still match cell by cell.
    upgrade = compare(_summary(cells, openai="2.31.0"), _summary(cells))
    assert [(c.variant, c.change) for c in upgrade.cells] == [("baseline", "unchanged")]


def test_a_compat_report_merges_again_with_one_more_line() -> None:
    cells = [("alpha", "baseline")]
    compat = merge(
        [("3.json", _summary(cells)), ("2.json", _summary(cells, openai="2.31.0"))],
        new_run_id=_ids,
    )
    again = merge([("compat.json", compat), ("1.json", _summary(cells, openai="1.109.1"))],
                  new_run_id=_ids)  # fmt: skip
    assert [e.key for e in again.entries] == [
        ("alpha", "baseline", "3"),
        ("alpha", "baseline", "2"),
        ("alpha", "baseline", "1"),
    ]
    assert again.environment["openai"] == "1.109.1, 2.31.0, 3.54.0"
