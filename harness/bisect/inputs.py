"""A bisect's inputs: checked before anything is written, then its report folder.

:func:`validate` reads the user's repository only (refs, ancestry, shallowness, history) and
loads the scenario; bad input raises ``BisectInputError`` or ``ScenarioError`` (one line,
exit 2). :func:`make_run_dir` is the first write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.bisect import git as g
from harness.bisect.model import BisectRequest, Bound
from harness.bisect.search import History
from harness.errors import BisectInputError, HarnessError
from harness.report.layout import run_stamp
from harness.scenario import load_scenario

__all__ = ["Bounds", "make_run_dir", "validate"]


@dataclass(frozen=True)
class Bounds:
    """Both bounds as given and resolved, and the candidate commits between them."""

    old: Bound
    new: Bound
    history: History


def validate(req: BisectRequest) -> tuple[Path, Bounds]:
    """Check every input without writing anything; return the git dir and resolved bounds."""
    common = g.common_dir(req.repo)
    old = g.resolve(req.repo, req.old_ref, req.old_option)
    new = g.resolve(req.repo, req.new_ref, req.new_option)
    if old == new:
        raise BisectInputError(
            f"{req.old_option} {req.old_ref!r} and {req.new_option} "
            f"{req.new_ref!r} are the same commit; pass two different ones"
        )
    if not g.is_ancestor(req.repo, old, new):
        hint = (
            "; the repository is a shallow clone: run `git fetch --unshallow` there"
            if g.is_shallow(req.repo)
            else f"; pass an older {req.old_option} commit on the same history"
        )
        raise BisectInputError(
            f"{req.old_option} {req.old_ref!r} is not an ancestor of {req.new_option} "
            f"{req.new_ref!r}{hint}"
        )
    load_scenario(req.scenario)  # ScenarioError names file, line and key
    history = g.history(req.repo, old, new, first_parent=req.first_parent)
    return common, Bounds(
        Bound(req.old_option, req.old_ref, old), Bound(req.new_option, req.new_ref, new), history
    )


def make_run_dir(report_dir: Path) -> Path:
    """Create ``<report_dir>/bisect-<stamp>[-n]/steps``; return the run folder. A folder that
    cannot be made is bad input (one line naming ``--report-dir``)."""
    stamp = run_stamp()
    for attempt in range(100):
        path = report_dir.resolve() / f"bisect-{stamp}{'' if not attempt else f'-{attempt}'}"
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BisectInputError(
                f"--report-dir {str(report_dir)!r}: cannot create {path}: "
                f"{exc.strerror}; pass a writable folder"
            ) from exc
        (path / "steps").mkdir()
        return path
    raise HarnessError(f"cannot find a free report folder name under {report_dir}")
