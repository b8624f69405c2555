"""Round trips through real runs: a run's own call log, exported as a trace, imported and run
again, replays as itself (calls per session, streams, gaps on their side of the idle timeout,
compressed gaps within a tolerance); an imported HAR file runs from the command line."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from harness.cli import main
from harness.importer import import_trace, read_trace, write_trace
from harness.importer.model import Trace
from harness.importer.replay import MARGIN
from harness.result import RunResult
from harness.runner import run_one
from harness.scenario import load_scenario, parse_scenario
from harness.zygote import Zygote

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "import"
pytestmark = pytest.mark.slow  # real replays; the SDK's part (catching the bug) is `sdk`

IDLE_MS = 2000
COMPRESS = 2
# A replayed gap never falls short of its plan (the server sees the client's gap and its own
# write); how far it overshoots is the client's own work between calls: 5-25 ms quiet, but
# 500 ms seen with two busy loops beside it, and a loaded first run traced a planned 1500 ms
# gap as 1033 ms (the call's recorded duration grew). So the gaps sit about 1 s from each
# idle timeout (2000 ms, replayed 1000 ms), and the checks are the plan itself, each replayed
# gap's side of the timeout and its floor.
SHORTFALL_MS = 20

ORIGINAL = f"""\
version: 1
server: {{keepalive: {{idle_timeout_ms: {IDLE_MS}}}}}
client: {{kwargs: {{timeout: 10}}}}
session:
  timeline:
    - calls:
        - {{stream: true, idle_ms: 60}}
        - {{idle_ms: 3400}}
        - {{stream: true, idle_ms: 30}}
        - {{idle_ms: 100}}
    - start_ms: 100
      calls:
        - {{idle_ms: 3000}}
        - {{stream: true, idle_ms: 40}}
        - {{idle_ms: 100}}
"""


def _gaps(calls: list[tuple[float, float]]) -> list[float]:
    """Milliseconds from each call's end to the next call's start."""
    return [(b[0] - (a[0] + a[1] / 1000)) * 1000 for a, b in itertools.pairwise(calls)]


def _planned(gap_ms: float) -> float:
    """What the import plans for a traced gap: compressed, then kept ``MARGIN`` of the
    replay's idle timeout away from it."""
    idle = IDLE_MS / COMPRESS
    if gap_ms > IDLE_MS:
        return max(gap_ms / COMPRESS, idle * (1 + MARGIN))
    return min(gap_ms / COMPRESS, idle * (1 - MARGIN))


def _shape(trace: Trace) -> dict[str, tuple[list[bool], list[float]]]:
    return {
        name: ([c.stream for c in calls], _gaps([(c.start_s, c.duration_ms) for c in calls]))
        for name, calls in trace.sessions().items()
    }


def _run(
    text: str, tmp_path: Path, name: str, forks: Zygote | None, variant: str = "baseline"
) -> RunResult:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_one(load_scenario(path), variant, root=ROOT, zygote=forks)
    assert result.status == "completed", result.detail
    return result


def test_a_runs_trace_replays_as_itself(tmp_path: Path, forks: Zygote | None) -> None:
    first = _run(ORIGINAL, tmp_path, "original", forks)
    assert first.errors == 0
    assert write_trace(first.server.calls, tmp_path / "first.jsonl") == 7
    traced = read_trace(tmp_path / "first.jsonl")

    imported = import_trace(traced, compress=COMPRESS, idle_timeout_ms=IDLE_MS, name="replay")
    assert imported.scenario.server.keepalive.idle_timeout_ms == IDLE_MS / COMPRESS
    replayed = _run(imported.text, tmp_path, "replay", forks)
    assert (replayed.errors, replayed.close_wait_live_after_gc) == (0, 0)
    write_trace(replayed.server.calls, tmp_path / "second.jsonl")
    again = read_trace(tmp_path / "second.jsonl")

    before, after = _shape(traced), _shape(again)
    assert sorted(before) == sorted(after) == ["1", "2"]
    planned = {s.name: [c.idle_ms for c in s.calls] for s in imported.scenario.session.timeline}
    for session in before:
        (streams, gaps), (streams2, gaps2) = before[session], after[session]
        assert streams == streams2
        assert len(gaps) == len(gaps2)
        for gap, plan, gap2 in zip(gaps, planned[session], gaps2, strict=False):
            assert plan == pytest.approx(_planned(gap), abs=0.1)
            assert (gap > IDLE_MS) == (gap2 > IDLE_MS / COMPRESS), (session, gaps, gaps2)
            assert gap2 >= plan - SHORTFALL_MS, (session, gaps, gaps2)


@pytest.mark.sdk
def test_the_imported_replay_catches_the_mutating_factory(
    tmp_path: Path, forks: Zygote | None
) -> None:
    traced = read_trace(DATA / "gateway.har")
    imported = import_trace(traced, compress=50, idle_timeout_ms=5000, name="har")
    result = _run(imported.text, tmp_path, "har", forks, "keepalive-mutating")
    # the first request client to close closes the transport planted in the kept kwargs: only
    # calls in flight before that (each session's first, at most) can succeed
    assert result.calls - 2 <= result.errors < result.calls
    assert set(result.errors_by_type) <= {"RuntimeError", "openai.APIConnectionError"}


def test_an_imported_har_file_runs_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "har.yaml"
    assert main(["import", str(DATA / "gateway.har"), "-o", str(out)]) == 0
    args = ["run", str(out), "--variant", "baseline", "--report-dir", str(tmp_path / "r")]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "verdict: PASS" in shown
    assert parse_scenario(out.read_text(encoding="utf-8")).session.concurrency == 2
