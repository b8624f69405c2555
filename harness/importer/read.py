"""Which format a trace file is in, and reading it into a :class:`~.model.Trace`.

Detection, when ``--format`` is not given: a file that is one JSON document with ``log`` is
HAR, one with ``resourceSpans`` (or whose first line is such a document) is OTLP JSON, and
anything else is read as JSON Lines, so that a broken file's error names its first bad line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from harness.errors import TraceError
from harness.importer.har import read_har
from harness.importer.jsonl import read_jsonl
from harness.importer.model import Trace
from harness.importer.otel import read_otel

__all__ = ["FORMATS", "detect", "read_trace"]

FORMATS: Final = ("jsonl", "har", "otel")

_WHAT: Final = {
    "jsonl": "give one JSON record per line",
    "har": "only entries toward .../chat/completions or .../responses are calls",
    "otel": "only spans with gen_ai.operation.name chat, text_completion or generate_content "
    "are calls",
}


def read_trace(path: Path, fmt: str = "") -> Trace:
    """The calls in ``path`` (format ``fmt``, detected when ""); :class:`TraceError` when
    the file cannot be read, is not in the format, or holds no LLM call."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(name, 0, f"cannot read the trace: {exc}") from exc
    fmt = fmt or detect(text)
    if fmt == "jsonl":
        trace = read_jsonl(name, text)
    else:
        documents = _documents(name, text)
        if fmt == "har":
            if len(documents) != 1:
                raise TraceError(name, 0, "a HAR file is one JSON document; this has several")
            trace = read_har(name, documents[0][1])
        else:
            trace = read_otel(name, documents)
    if not trace.calls:
        raise TraceError(name, 0, f"no LLM calls in it as {fmt}; {_WHAT[fmt]}")
    return trace


def detect(text: str) -> str:
    """``har``, ``otel`` or ``jsonl``: what ``text`` looks like (see the module docstring)."""
    whole = _json(text)
    if isinstance(whole, dict) and "log" in whole:
        return "har"
    first = whole if whole is not None else _json(next(iter(text.splitlines()), ""))
    if isinstance(first, dict) and "resourceSpans" in first:
        return "otel"
    return "jsonl"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _documents(name: str, text: str) -> list[tuple[int, Any]]:
    """One JSON document (line 0), or one per line; a line that is not JSON is an error."""
    whole = _json(text)
    if whole is not None:
        return [(0, whole)]
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            documents.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TraceError(name, number, f"not JSON ({exc.msg}); check --format") from None
    return documents
