"""results.json: the one saved form of a :class:`RegressSummary` (schema 1).

Every other format can be re-rendered from this file (``harness report``), and ``harness
compare`` reads two of them, so loading is strict: a missing file, bad JSON, an unknown
schema, or data that does not fit the result dataclasses
(:mod:`harness.report.results_schema`: a missing or unknown field, a number given as a
string, a ``run_id`` that could leave the output folder) is one :class:`UsageError` line
naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.layout import run_id_problem
from harness.report.results_schema import SchemaMismatch, check
from harness.verdict import RegressSummary

__all__ = ["SCHEMA", "load_summary", "parse_summary", "render_json"]

SCHEMA = 1


def render_json(summary: RegressSummary) -> str:
    """``summary.to_dict()`` as indented JSON text, ending in a newline."""
    data = summary.to_dict()
    data["schema"] = SCHEMA
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def load_summary(path: Path) -> RegressSummary:
    """Read a results.json written by :func:`render_json`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(
            f"{path}: no such file; pass a results.json written by 'harness regress'"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read results: {exc}") from exc
    return parse_summary(text, path=str(path))


def parse_summary(text: str, *, path: str = "<string>") -> RegressSummary:
    """Parse results.json text; every problem is a one-line :class:`UsageError`."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); "
            "pass a results.json written by 'harness regress'"
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object at the top, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise UsageError(
            f"{path}: unknown results schema {schema!r}; this harness reads schema {SCHEMA}"
        )
    try:
        check(RegressSummary, data, allowed=frozenset({"schema"}))
    except SchemaMismatch as exc:
        raise UsageError(
            f"{path}: field {exc.field!r}: {exc.message}; see docs/reports.md (schema {SCHEMA})"
        ) from exc
    problem = run_id_problem(data["run_id"])
    if problem is not None:
        raise UsageError(f"{path}: field 'run_id': {problem}")
    try:
        return RegressSummary.from_dict(data)
    except ValueError as exc:  # what types cannot say: e.g. one verdict per run
        raise UsageError(f"{path}: malformed schema {SCHEMA} results: {exc}") from exc
