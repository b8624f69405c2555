"""Report artifacts for a :class:`~harness.verdict.RegressSummary`.

:func:`write_reports` renders every format from the one summary value and writes them
atomically into ``root/<run-id>/``; :func:`load_summary` reads a saved results.json back.
The writers never compute a metric: they show :class:`~harness.result.RunResult` and
:class:`~harness.verdict.Verdict` fields as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from harness.report.html import render_html
from harness.report.jsonfile import SCHEMA, load_summary, parse_summary, render_json
from harness.report.junit import render_junit
from harness.report.layout import (
    append_step_summary,
    atomic_write_text,
    latest_run,
    run_dir,
    update_latest,
)
from harness.report.markdown import render_markdown
from harness.verdict import RegressSummary

__all__ = [
    "FILES",
    "SCHEMA",
    "latest_run",
    "load_summary",
    "parse_summary",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_reports",
]

# file name -> renderer, in the order they are written: results.json first, so that whatever
# else fails, the data itself is saved and the rest can be re-rendered with `harness report`.
FILES = (
    ("results.json", render_json),
    ("junit.xml", render_junit),
    ("summary.md", render_markdown),
    ("report.html", render_html),
)


def write_reports(
    summary: RegressSummary, root: Path, *, env: Mapping[str, str] = os.environ
) -> Path:
    """Write every format into ``root/<run-id>/``, point ``root/latest`` at the newest run,
    and append summary.md to ``env["GITHUB_STEP_SUMMARY"]`` when that is set.

    Returns the run directory. Also meant for an interrupted run (``summary.interrupted``):
    the finished cells are written and the reports say the run is partial.
    """
    target = run_dir(Path(root), summary.run_id)
    markdown = ""
    for name, render in FILES:
        text = render(summary)
        atomic_write_text(target / name, text)
        if name == "summary.md":
            markdown = text
    update_latest(Path(root), summary.run_id)
    append_step_summary(markdown, env)
    return target
