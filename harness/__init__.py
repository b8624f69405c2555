"""lifecycle-harness: reproduce, compare and bisect connection-lifecycle bugs in LLM clients.

The public surface is re-exported here; every other module is private by default.
"""

from __future__ import annotations

from harness.errors import (
    BisectInputError,
    FactoryError,
    HarnessError,
    ScenarioError,
    UsageError,
    WorkerError,
)
from harness.matrix import Cell, plan, run_matrix
from harness.mockserver import MockServer
from harness.report import load_summary, write_reports
from harness.result import CallRecord, RunResult, ServerCall, ServerStats, SocketSample
from harness.runner import run_one
from harness.scenario import Scenario, load_scenario, parse_scenario
from harness.verdict import RegressEntry, RegressSummary, Verdict, judge

__all__ = [
    "BisectInputError",
    "CallRecord",
    "Cell",
    "FactoryError",
    "HarnessError",
    "MockServer",
    "RegressEntry",
    "RegressSummary",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "ServerCall",
    "ServerStats",
    "SocketSample",
    "UsageError",
    "Verdict",
    "WorkerError",
    "judge",
    "load_scenario",
    "load_summary",
    "parse_scenario",
    "plan",
    "run_matrix",
    "run_one",
    "write_reports",
]
