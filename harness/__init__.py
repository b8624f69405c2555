"""lifecycle-harness: reproduce, compare and bisect connection-lifecycle bugs in LLM clients.

The public surface is re-exported here; every other module is private by default.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from harness.scenario import load_scenario, parse_scenario
    from harness.schema import Scenario
    from harness.testing import Checked, assert_healthy, check_factory
    from harness.verdict import RegressEntry, RegressSummary, Verdict, judge
    from harness.zygote import Zygote, workers_for

__all__ = [
    "BisectInputError",
    "CallRecord",
    "Cell",
    "Checked",
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
    "Zygote",
    "assert_healthy",
    "check_factory",
    "judge",
    "load_scenario",
    "load_summary",
    "parse_scenario",
    "plan",
    "run_matrix",
    "run_one",
    "workers_for",
    "write_reports",
]

# Imported on first use: a worker process (`python -m harness.worker`) imports this package
# first, and should not pay for the server, the reports and the matrix it never uses.
_HOMES = {
    "BisectInputError": "harness.errors",
    "FactoryError": "harness.errors",
    "HarnessError": "harness.errors",
    "ScenarioError": "harness.errors",
    "UsageError": "harness.errors",
    "WorkerError": "harness.errors",
    "Cell": "harness.matrix",
    "plan": "harness.matrix",
    "run_matrix": "harness.matrix",
    "MockServer": "harness.mockserver",
    "load_summary": "harness.report",
    "write_reports": "harness.report",
    "CallRecord": "harness.result",
    "RunResult": "harness.result",
    "ServerCall": "harness.result",
    "ServerStats": "harness.result",
    "SocketSample": "harness.result",
    "run_one": "harness.runner",
    "Scenario": "harness.schema",
    "load_scenario": "harness.scenario",
    "parse_scenario": "harness.scenario",
    "Checked": "harness.testing",
    "assert_healthy": "harness.testing",
    "check_factory": "harness.testing",
    "RegressEntry": "harness.verdict",
    "RegressSummary": "harness.verdict",
    "Verdict": "harness.verdict",
    "judge": "harness.verdict",
    "Zygote": "harness.zygote",
    "workers_for": "harness.zygote",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
