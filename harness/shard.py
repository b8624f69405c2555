"""Shards: a deterministic slice of a regress matrix, for spreading it over CI runners.

``regress --shard I/N`` runs shard ``I`` of ``N``. Every runner computes the same split from the
same plan, with no coordination: cells are dealt longest first (by their expected duration) to
the shard with the least expected work so far, ties going to the lower shard number and, among
equally long cells, to plan order (the LPT rule: within 4/3 of the best possible balance). A
cell belongs to exactly one shard, and the union of shards 1..N is the whole plan.
``harness report --merge`` puts the shards' results back together.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Shard", "assign", "parse_shard"]

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 <= I <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def pick(self, items: Sequence[T], weights: Sequence[float]) -> list[T]:
        """The items of this shard, in their original order."""
        owners = assign(weights, self.count)
        return [item for item, owner in zip(items, owners, strict=True) if owner == self.index]

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shard:
        return cls(index=int(data["index"]), count=int(data["count"]))


def assign(weights: Sequence[float], count: int) -> list[int]:
    """The shard (1..count) of each item, balancing the summed weights (see module docs)."""
    load = [0.0] * count
    owners = [0] * len(weights)
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        target = min(range(count), key=lambda s: (load[s], s))
        load[target] += weights[i]
        owners[i] = target + 1
    return owners


def parse_shard(text: str) -> Shard:
    """argparse type: ``I/N`` with 1 <= I <= N."""
    index, sep, count = text.partition("/")
    try:
        return Shard(int(index), int(count)) if sep else Shard(0, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a shard; write I/N with 1 <= I <= N, e.g. 2/4"
        ) from None
