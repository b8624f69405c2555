"""``bisect-log.txt``: the conclusion recorded with ``git bisect`` in the private clone.

Every tested commit is marked with the term the answer gives it and untestable ones are
skipped (:func:`harness.bisect.search.log_marks`), so the log is one ``git bisect replay``
accepts and git's own verdict confirms ours (:func:`confirm`). The harness's readings go in
as ``#`` comments, which replay ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.bisect import git as g
from harness.bisect.model import StepRecord, Terms
from harness.bisect.report import runs_per_commit
from harness.bisect.search import History, log_marks
from harness.errors import HarnessError
from harness.report.layout import atomic_write_text

__all__ = ["confirm", "record"]


def record(
    clone: Path,
    path: Path,
    *,
    history: History,
    terms: Terms,
    bounds: tuple[str, str],
    records: Sequence[StepRecord],
    answer: int,
    first_parent: bool,
) -> str:
    """Replay the conclusion (``answer``: the first new commit's index) with ``git bisect``
    in ``clone``; write the log, readings first as comments, to ``path`` and return it."""
    index = {sha: i for i, sha in enumerate(history.shas)}
    steps = [r for r in records if not r.is_bound]
    skipped = {index[r.sha] for r in steps if r.term == "skip"}
    marks = log_marks(history, [index[r.sha] for r in steps], skipped, answer)
    words = {"old": terms.old, "new": terms.new, "skip": "skip"}
    notes = [
        f"# harness runs: [{row['sha']}] {row['unhealthy']}/{row['runs']} unhealthy"
        for row in runs_per_commit(records)
    ]
    text = g.write_log(
        clone,
        terms,
        bounds,
        [(words[kind], history.shas[x]) for kind, x in marks],
        first_parent=first_parent,
    )
    text = "\n".join(notes) + "\n" + text
    atomic_write_text(path, text)
    return text


def confirm(log: str, sha: str, terms: Terms) -> None:
    """Raise unless git's own verdict in ``log`` names ``sha`` as the first new commit."""
    outcome = g.parse_bisect_log(log, terms)
    if outcome.kind != "found" or outcome.sha != sha:
        raise HarnessError(
            f"git bisect does not confirm {sha[:12]} from the recorded terms "
            f"({outcome.kind} {outcome.sha[:12]}); see bisect-log.txt"
        )
