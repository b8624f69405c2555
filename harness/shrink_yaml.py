"""A shrink's result as a commented scenario file, checked by loading it back.

The file sets only what differs from the schema's defaults (plus ``version``, ``name``,
``description``, ``expect`` and ``variants`` as given), so it reads as the reproducer it is.
A header comment says where it came from, what each step removed, what that saved and the
runs it cost; each key a step changed carries its old value in a comment. :func:`render`
parses its own text with :func:`harness.scenario.parse_scenario` and refuses to return a
file that does not load back to the shrunk scenario.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import yaml

from harness.scenario import parse_scenario
from harness.schema import FAULTS, Scenario
from harness.shrink import ShrinkResult, Step, planned_calls

__all__ = ["render", "summary_lines"]

_DEFAULTS = Scenario(name="").to_dict()


def _pruned(data: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys equal to ``defaults`` (nested mappings pruned too)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        default = defaults.get(key, object())
        if isinstance(value, dict) and isinstance(default, dict):
            value = _pruned(value, default)
            if value:
                out[key] = value
        elif value != default:
            out[key] = value
    return out


def _fault(data: Mapping[str, Any]) -> dict[str, Any]:
    defaults = asdict(FAULTS[data["kind"]]())
    return {
        "kind": data["kind"],
        **_pruned({k: v for k, v in data.items() if k != "kind"}, defaults),
    }


def _plain(scenario: Scenario, name: str, description: str) -> dict[str, Any]:
    data = scenario.to_dict()
    out: dict[str, Any] = {"version": 1, "name": name, "description": description}
    for section in ("server", "client", "session"):
        kept = _pruned(data[section], _DEFAULTS[section])
        if section == "client":  # it decides this bug class: always said
            kept["close_request_clients"] = data["client"]["close_request_clients"]
        if section == "server" and "faults" in kept:
            kept["faults"] = [_fault(f) for f in kept["faults"]]
        if kept:
            out[section] = kept
    out["expect"] = {k: v for k, v in data["expect"].items() if v is not None}
    if data["variants"]:
        out["variants"] = data["variants"]
    return out


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_lines(result: ShrinkResult) -> list[str]:
    """One line per field a kept step changed: first and last value, what it saved, the
    runs every candidate of that field cost (kept or not)."""
    lines = []
    for field in dict.fromkeys(s.field for s in result.steps):
        steps = [s for s in result.steps if s.field == field]
        kept = [s for s in steps if s.kept]
        runs = _count(sum(len(s.runs) for s in steps), "run")
        if not kept:
            nearest = _largest([s.after for s in steps])
            lines.append(f"{field}: kept at {steps[0].before}, {nearest} lost it; {runs}")
            continue
        first, last = kept[0], kept[-1]
        saved = (
            f"calls {first.calls[0]} -> {last.calls[1]}" if first.calls[0] != last.calls[1] else ""
        )
        waits = (first.planned_s[0], last.planned_s[1])
        if waits[0] != waits[1]:
            saved += f"{', ' if saved else ''}planned waits {waits[0]:g} s -> {waits[1]:g} s"
        lost = [s.after for s in steps if not s.kept]
        why = f"; {_largest(lost)} lost it" if lost else ""
        lines.append(
            f"{field}: {first.before} -> {last.after} ({saved or 'same calls and waits'}); "
            f"{runs}{why}"
        )
    return lines


def _largest(values: Sequence[str]) -> str:
    """The largest of numbers shown as text (the nearest a bisection came), else the last."""
    try:
        return max(values, key=float)
    except ValueError:
        return values[-1]


def _notes(steps: Sequence[Step]) -> dict[str, str]:
    """Each changed key's dotted name -> ``was X``."""
    notes: dict[str, str] = {}
    for step in steps:
        if step.kept and step.field not in notes:
            notes[step.field] = f"was {step.before}"
    return notes


def _annotate(text: str, notes: Mapping[str, str]) -> str:
    """Append ``# was X`` to the line of each key in ``notes`` (found by indentation)."""
    path: list[tuple[int, str]] = []
    out = []
    for line in text.splitlines():
        match = re.match(r"^( *)([A-Za-z_]+):", line)
        if match:
            depth = len(match.group(1))
            path = [p for p in path if p[0] < depth] + [(depth, match.group(2))]
            dotted = ".".join(name for _, name in path)
            if dotted in notes:
                line += f"  # {notes[dotted]}"
        out.append(line)
    return "\n".join(out) + "\n"


def render(result: ShrinkResult, *, source: str, factory: str, what: str, out: str) -> str:
    """The commented scenario file for ``result`` (``source``: where the scenario came from,
    ``what``: what it keeps showing, ``out``: where it goes); raises RuntimeError if it does
    not load back."""
    final, initial = result.final, result.initial
    name = f"{initial.name}-min"
    description = (
        f"{initial.description} (Shrunk from {initial.name} by harness shrink.)"
        if initial.description
        else f"Shrunk from {initial.name} by harness shrink."
    )
    body = yaml.safe_dump(
        _plain(final, name, description), sort_keys=False, width=88, default_flow_style=False
    )
    shown = sum(result.calibration)
    flaky = f" --repeat {result.check_repeat} --policy any" if result.flaky else ""
    header = [
        f"Shrunk by `harness shrink` from {source} for factory {factory}:",
        f"the smallest scenario found that still shows {what}.",
        f"{_count(result.runs, 'oracle run')}; as given it showed it in {shown} of "
        f"{_count(len(result.calibration), 'calibration run')}, the result in "
        f"{sum(result.verification)} of {len(result.verification)};",
        f"estimated show rate {result.show_rate:.2f} per run; calls per run "
        f"{planned_calls(final)} (was {planned_calls(initial)}).",
        "What each step removed (first -> last value, what it saved, the runs it cost):",
        *(f"  {line}" for line in summary_lines(result) or ["nothing could be removed"]),
        f"Check it: harness check --scenario {out} --factory {factory}{flaky}",
    ]
    text = "".join(f"# {line}\n" for line in header) + _annotate(body, _notes(result.steps))
    loaded = parse_scenario(text, path="<shrunk>", default_name=name)
    if _same(loaded, final):
        return text
    raise RuntimeError("the shrunk scenario does not load back as written (a harness bug)")


def _same(a: Scenario, b: Scenario) -> bool:
    keys = ("server", "client", "session", "expect", "variants")
    da, db = a.to_dict(), b.to_dict()
    return all(da[k] == db[k] for k in keys)
