"""Judging the calibration calls on the bounds: pure, no I/O.

The driver runs the bounds in the order :func:`harness.bisect.search.calibration_next` asks,
keeping one :class:`Side` per bound (the buggy one should read ``regression``, the clean one
``healthy``); :func:`wrong_bounds` then says, in one line, which bound is wrong and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.bisect.model import Bound, StepRecord, Terms
from harness.bisect.render import bound_message
from harness.bisect.search import OLD_BOUND, History, wrong_bound

__all__ = ["Side", "sides", "wrong_bounds"]


@dataclass
class Side:
    """One bound under calibration: what it should read and the calls made on it so far."""

    bound: Bound
    index: int  # its commit index for the posterior (OLD_BOUND for the old bound)
    term: str
    buggy: bool  # should show the regression
    calls: list[StepRecord] = field(default_factory=list)
    runs: list[bool] = field(default_factory=list)  # every counted run's reading

    @property
    def want(self) -> str:
        return "regression" if self.buggy else "healthy"

    @property
    def failed(self) -> bool:
        """The last call was untestable or failed: calibration stops there."""
        return bool(self.calls) and self.calls[-1].verdict in ("untestable", "error")


def sides(old: Bound, new: Bound, history: History, terms: Terms) -> dict[str, Side]:
    """The two sides, keyed as :func:`~harness.bisect.search.calibration_next` names them."""
    old_side = Side(old, OLD_BOUND, terms.old, buggy=not terms.buggy_is_new)
    new_side = Side(new, history.new_bound, terms.new, buggy=terms.buggy_is_new)
    buggy, clean = (new_side, old_side) if terms.buggy_is_new else (old_side, new_side)
    return {"buggy": buggy, "clean": clean}


def wrong_bounds(by_side: dict[str, Side]) -> str | None:
    """Why the bounds are wrong, in one line (clean bound first); None when both hold."""
    wrong = [
        bound_message(side.bound.option, side.calls, side.want)
        for side in (by_side["clean"], by_side["buggy"])
        if side.calls and (side.failed or wrong_bound(side.runs, buggy=side.buggy))
    ]
    return "; ".join(wrong) or None
