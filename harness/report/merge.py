"""Combine several results.json into one summary: regress shards, SDK lines, or both.

:func:`merge` is pure. Rules, each checked so that a merged report never hides a gap:

- When the inputs ran on more than one openai SDK line (the major version in their
  environment fingerprint), every cell is tagged with its input's line (``RegressEntry.line``);
  otherwise lines stay as the inputs have them.
- A cell (scenario, variant, line) may appear in one input only.
- Inputs that are shards (``--shard I/N``) must come as a full set per SDK line: every
  ``I`` of ``1..N`` exactly once, all with the same ``N``.
- The same scenario name must carry the same settings in every input.

The result lists cells in scenario order (as the inputs list scenarios), then variant order
(as the scenario lists variants), then SDK line (as the inputs come); its ``started`` is the
earliest, ``wall_s`` the longest input (shards run side by side), ``interrupted`` true when
any input was, and its environment keeps each fingerprint key once, joining values that differ
(``"2.31.0, 3.54.0"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.errors import UsageError
from harness.variants import BUNDLED
from harness.verdict import RegressEntry, RegressSummary

__all__ = ["merge", "sdk_line"]


def sdk_line(environment: Mapping[str, str]) -> str:
    """The openai major version of a fingerprint (``"3.54.0"`` -> ``"3"``); "" when absent or
    several."""
    version = environment.get("openai", "")
    major = version.split(".", 1)[0]
    # A merged report's fingerprint joins the versions ("2.31.0, 3.54.0"): no one line.
    return major if major.isdigit() and "," not in version else ""


def merge(
    inputs: Sequence[tuple[str, RegressSummary]], *, new_run_id: Callable[[str], str]
) -> RegressSummary:
    """One summary from ``(source name, summary)`` pairs; :class:`UsageError` on a conflict.

    Its command is the inputs' common command (``"merge"`` when they differ), and its run id
    ``new_run_id(command)``.
    """
    if not inputs:
        raise UsageError("--merge needs at least one results.json")
    lines = [sdk_line(s.environment) for _, s in inputs]
    tag = len(set(lines)) > 1
    _check_shards(inputs, lines)
    scenarios = _scenarios(inputs)
    entries: dict[tuple[str, str, str], tuple[str, RegressEntry]] = {}
    for (source, summary), line in zip(inputs, lines, strict=True):
        for entry in summary.entries:
            cell = dataclasses.replace(entry, line=line) if tag and not entry.line else entry
            if cell.key in entries:
                raise UsageError(
                    f"{source}: cell {_name(cell)} is also in {entries[cell.key][0]}; "
                    "merge each shard and SDK line once"
                )
            entries[cell.key] = (source, cell)
    cells = [e for _, e in entries.values()]
    commands = {s.command for _, s in inputs}
    command = commands.pop() if len(commands) == 1 else "merge"
    return RegressSummary(
        run_id=new_run_id(command),
        command=command,
        started=min(s.started for _, s in inputs),
        wall_s=max(s.wall_s for _, s in inputs),
        entries=tuple(sorted(cells, key=_order(scenarios, cells))),
        environment=_environment([s.environment for _, s in inputs]),
        interrupted=any(s.interrupted for _, s in inputs),
        scenarios=scenarios,
    )


def _name(entry: RegressEntry) -> str:
    return f"{entry.scenario} / {entry.label}"


def _check_shards(inputs: Sequence[tuple[str, RegressSummary]], lines: Sequence[str]) -> None:
    by_line: dict[str, list[tuple[str, RegressSummary]]] = {}
    for pair, line in zip(inputs, lines, strict=True):
        if pair[1].shard is not None:
            by_line.setdefault(line, []).append(pair)
    for line, group in by_line.items():
        where = f" on openai {line}" if line else ""
        counts = {s.shard.count for _, s in group if s.shard}
        if len(counts) > 1:
            raise UsageError(
                f"shards{where} were split different ways (N = {sorted(counts)}); "
                "merge shards of one --shard I/N split"
            )
        count = counts.pop()
        seen: dict[int, str] = {}
        for source, summary in group:
            index = summary.shard.index if summary.shard else 0
            if index in seen:
                raise UsageError(f"{source}: shard {index}/{count}{where} is also {seen[index]}")
            seen[index] = source
        missing = [str(i) for i in range(1, count + 1) if i not in seen]
        if missing:
            raise UsageError(
                f"shard {', '.join(missing)} of {count}{where} missing; "
                "pass every shard's results.json"
            )


def _scenarios(inputs: Sequence[tuple[str, RegressSummary]]) -> dict[str, Mapping[str, Any]]:
    merged: dict[str, Mapping[str, Any]] = {}
    first: dict[str, str] = {}
    for source, summary in inputs:
        for name, settings in summary.scenarios.items():
            if name in merged and merged[name] != settings:
                raise UsageError(
                    f"{source}: scenario {name!r} has other settings than in {first[name]}; "
                    "merge runs of the same scenario files"
                )
            merged.setdefault(name, settings)
            first.setdefault(name, source)
    return merged


def _order(
    scenarios: Mapping[str, Mapping[str, Any]], cells: Sequence[RegressEntry]
) -> Callable[[RegressEntry], tuple[int, int, str, int]]:
    """Sort key: scenario position, variant position within it, then SDK line position."""
    # Scenarios a results.json lacks settings for (older files) go last, as they come.
    names = list(dict.fromkeys([*scenarios, *(e.scenario for e in cells)]))
    lines = list(dict.fromkeys(e.line for e in cells))

    def key(entry: RegressEntry) -> tuple[int, int, str, int]:
        # No `variants:` in a scenario means every bundled variant, in bundled order.
        variants = list(scenarios.get(entry.scenario, {}).get("variants") or BUNDLED)
        known = entry.variant in variants
        return (
            names.index(entry.scenario),
            variants.index(entry.variant) if known else len(variants),
            "" if known else entry.variant,
            lines.index(entry.line),
        )

    return key


def _environment(environments: Sequence[Mapping[str, str]]) -> dict[str, str]:
    keys = list(dict.fromkeys(k for env in environments for k in env))
    merged = {}
    for key in keys:
        values = sorted({env[key] for env in environments if key in env})
        merged[key] = ", ".join(values)
    return merged
