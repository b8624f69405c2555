"""Shards: a deterministic, balanced split where every cell lands in exactly one shard."""

from __future__ import annotations

import argparse

import pytest

from harness.matrix import expected_seconds, plan
from harness.scenario import parse_scenario
from harness.shard import Shard, assign, parse_shard


def test_assign_deals_longest_first_to_the_least_loaded_shard() -> None:
    # 9 -> s1; 7 -> s2; 5 -> s2 (7 < 9); 3 -> s1 (9 < 12); then 1 (first in plan) -> s1 on
    # the 12/12 tie, the other 1 -> s2
    assert assign([1.0, 9.0, 3.0, 7.0, 5.0, 1.0], 2) == [1, 1, 1, 2, 2, 2]
    assert assign([2.0, 2.0, 2.0], 3) == [1, 2, 3]  # equal weights: plan order, lower shard
    assert assign([1.0], 3) == [1]
    assert assign([], 2) == []


def test_every_cell_in_exactly_one_shard_and_balanced() -> None:
    weights = [float(w) for w in (13, 2, 8, 8, 1, 5, 21, 3, 3, 34, 1, 2)]
    items = list(range(len(weights)))
    shards = [Shard(i, 3).pick(items, weights) for i in (1, 2, 3)]
    assert sorted(x for shard in shards for x in shard) == items
    assert [sum(weights[x] for x in shard) for shard in shards] == [34.0, 34.0, 33.0]
    assert shards == [[9], [3, 4, 6, 8, 10], [0, 1, 2, 5, 7, 11]]


def test_shard_of_a_real_plan_keeps_plan_order() -> None:
    variants = (
        "variants: {baseline: pass, keepalive-mutating: observe, keepalive-fixed: pass,"
        " shared-http-client: observe}\n"
    )
    quick = parse_scenario("version: 1\nname: quick\nsession: {turns: 1}\n" + variants)
    slow = parse_scenario(
        "version: 1\nname: slow\nsession: {turns: 40, idle_between_turns_ms: 50}\n" + variants
    )
    cells = plan([quick, slow])
    weights = [expected_seconds(c.scenario) for c in cells]
    first = Shard(1, 2).pick(cells, weights)
    second = Shard(2, 2).pick(cells, weights)
    # The four slow cells alternate between the shards, then the four quick ones do.
    assert [(c.scenario.name, c.variant) for c in first] == [
        ("quick", "baseline"),
        ("quick", "keepalive-fixed"),
        ("slow", "baseline"),
        ("slow", "keepalive-fixed"),
    ]
    assert [(c.scenario.name, c.variant) for c in second] == [
        ("quick", "keepalive-mutating"),
        ("quick", "shared-http-client"),
        ("slow", "keepalive-mutating"),
        ("slow", "shared-http-client"),
    ]


def test_parse_shard() -> None:
    assert parse_shard("2/4") == Shard(2, 4)
    assert str(parse_shard("1/1")) == "1/1"
    for bad in ("0/2", "3/2", "2", "a/b", "1/0", "-1/2"):
        with pytest.raises(argparse.ArgumentTypeError, match="write I/N with 1 <= I <= N"):
            parse_shard(bad)
    assert Shard.from_dict(Shard(3, 5).to_dict()) == Shard(3, 5)
