"""``harness import``: a production timeline of LLM calls as a replayable scenario.

A pipeline of values: a trace file is read into one typed :class:`~.model.Trace` whatever its
format (:mod:`.read`: JSON Lines, HAR, OTLP JSON), planned as a time-compressed replay that
keeps every gap on its side of the provider's idle timeout (:mod:`.replay`, pure), rendered
as a commented scenario with a ``session.timeline`` (:mod:`.render`) and loaded back through
:mod:`harness.scenario`, so what is written is a valid scenario or nothing is.
:mod:`.export` writes the mock server's call log in the JSON Lines format, for round trips.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ScenarioError, UsageError
from harness.importer.export import trace_records, write_trace
from harness.importer.model import Trace, TraceCall
from harness.importer.read import FORMATS, detect, read_trace
from harness.importer.render import render
from harness.importer.replay import Replay, auto_compress, plan
from harness.planned import DEFAULT_MAX_DURATION_S
from harness.scenario import Scenario, parse_scenario

__all__ = [
    "FORMATS",
    "Imported",
    "Replay",
    "Trace",
    "TraceCall",
    "auto_compress",
    "detect",
    "import_trace",
    "read_trace",
    "trace_records",
    "write_trace",
]


@dataclass(frozen=True)
class Imported:
    """An imported trace: the scenario file's text, the scenario it loads as, and the plan."""

    text: str
    scenario: Scenario
    replay: Replay


def import_trace(
    trace: Trace,
    *,
    compress: float,
    idle_timeout_ms: float,
    name: str,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
) -> Imported:
    """``trace`` as a scenario named ``name``; UsageError when the replay cannot be one."""
    replay = plan(trace, compress=compress, idle_timeout_ms=idle_timeout_ms)
    text = render(replay, name)
    try:
        scenario = parse_scenario(text, path=f"<{name}>", max_duration_s=max_duration_s)
    except ScenarioError as exc:
        raise UsageError(
            f"{trace.path}: the replay at --compress {compress:g} is not a valid scenario "
            f"({exc.key}: {exc.message}); raise --compress"
        ) from exc
    return Imported(text, scenario, replay)
