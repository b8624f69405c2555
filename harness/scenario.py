"""Scenario files: YAML loading with file:line errors into the frozen values of the schema.

The schema itself (every key's default, range, choices, whether it must be given, and the
rules across keys) lives in :mod:`harness.schema`; this module reads a YAML node tree
against it, field by field, with one reader per type and no per-key code, so the two can
never disagree. Only the file format's gate (``version``) and ``variants`` (keys are open
names, checked against the bundled ones) are read by hand. Validation happens once, here;
nothing downstream re-checks raw dicts. The schema's names are re-exported from here.

Hostile files are refused, never crashed on: nesting deeper than :data:`MAX_DEPTH` is
refused before the tree is built (PyYAML's composer recurses), any tag but the plain YAML
core types is refused, and a value YAML cannot construct (``!!int three``, a 5000-digit
integer) is an error at its line. A scenario that plans to run longer than the limit
(:func:`harness.planned.planned_duration_s`) is refused unless the caller raises the limit.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

import yaml

from harness import planned, schema
from harness.errors import ScenarioError
from harness.fields import Problem, field_names, tagged
from harness.planned import DEFAULT_MAX_DURATION_S, planned_duration_s
from harness.schema import *  # noqa: F403  (the values this module loads are its API too)
from harness.schema import Expectation, Scenario
from harness.variants import BUNDLED

__all__ = ["MAX_DEPTH", "load_scenario", "parse_scenario"]
__all__ += schema.__all__
__all__ += planned.__all__

_CALLS: Final = tuple[int, ...] | None  # a fault's `calls`: numbers, or `all`
MAX_DEPTH: Final = 16  # nested mappings/lists; a valid scenario needs 4
# The tags the YAML core schema resolves plain values to; anything else was written by hand.
_CORE_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
)


class _Section:
    """A YAML mapping node being validated; tracks which keys were read."""

    def __init__(self, ctx: _Context, node: yaml.Node, key: str) -> None:
        self.ctx = ctx
        self.key = key
        self.line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            raise ctx.error(node, key, f"must be a mapping, got {_kind(node)}")
        self.items: dict[str, yaml.Node] = {}
        self.key_lines: dict[str, int] = {}
        for knode, vnode in node.value:
            name = ctx.scalar(knode, key)
            if not isinstance(name, str):
                raise ctx.error(knode, key, f"keys must be strings, got {name!r}")
            if name in self.items:
                raise ctx.error(knode, self.sub(name), "duplicate key")
            self.items[name] = vnode
            self.key_lines[name] = knode.start_mark.line + 1

    def sub(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def finish(self, allowed: tuple[str, ...]) -> None:
        for name, line in self.key_lines.items():
            if name not in allowed:
                message = f"unknown key; allowed here: {', '.join(allowed)}"
                raise ScenarioError(self.ctx.path, line, self.sub(name), message)

    def section(self, name: str) -> _Section | None:
        node = self.items.get(name)
        if node is None or _is_null(node):
            return None
        return _Section(self.ctx, node, self.sub(name))

    def choice(self, name: str, allowed: tuple[str, ...]) -> Any:
        node = self.items[name]
        value = self.ctx.scalar(node, self.sub(name))
        if value is False and "off" in allowed:  # YAML 1.1 reads a bare `off` as false
            value = "off"
        if not isinstance(value, str) or value not in allowed:
            raise self.ctx.error(
                node, self.sub(name), f"{value!r} is not allowed; use one of: {', '.join(allowed)}"
            )
        return value

    def read(self, name: str, hint: Any, meta: Mapping[str, Any], up: Any) -> Any:
        """A key the section sets, by its declared type (:mod:`harness.schema` says how)."""
        node, key = self.items[name], self.sub(name)
        if hint == _CALLS:
            return self.calls(name)
        if get_origin(hint) is types.UnionType and type(None) in get_args(hint):
            if _is_null(node):
                return None
            hint = next(a for a in get_args(hint) if a is not type(None))
        if get_origin(hint) is Literal:
            return self.choice(name, get_args(hint))
        if get_origin(hint) is tuple:
            return self.sections(name, get_args(hint)[0], up)
        if "section" in meta:  # only the keys set, e.g. client.kwargs
            sec = self.section(name)
            if sec is None:
                return MappingProxyType({})
            sec.finish(field_names(meta["section"]))
            return MappingProxyType(_given(meta["section"], sec, up))
        if hint not in (bool, str, int, float):
            return _value(hint, self.section(name), up)
        value = self.ctx.scalar(node, key)
        if hint in (bool, str):
            if not isinstance(value, hint):
                want = "true or false" if hint is bool else "a string"
                raise self.ctx.error(node, key, f"must be {want}, got {value!r}")
            return value
        want = "an integer" if hint is int else "a number"
        ok_type = isinstance(value, int) if hint is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:  # True == 1: a boolean is not a number
            raise self.ctx.error(node, key, f"must be {want}, got {value!r}")
        lo, hi = meta["lo"], meta["hi"]
        if not lo <= value <= hi or (isinstance(value, float) and math.isnan(value)):
            raise self.ctx.error(
                node, key, f"{value!r} is out of range; allowed {_num(lo)}..{_num(hi)}"
            )
        return meta["cast"](value) if "cast" in meta else value

    def sections(self, name: str, cls: Any, up: Any) -> tuple[Any, ...]:
        node = self.items[name]
        if _is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.ctx.error(node, self.sub(name), f"must be a list, got {_kind(node)}")
        key = self.sub(name)
        return tuple(
            _value(cls, _Section(self.ctx, item, f"{key}[{i}]"), up)
            for i, item in enumerate(node.value)
        )

    def calls(self, name: str) -> tuple[int, ...] | None:
        """1-based call numbers (sorted, once each), or None for ``all``."""
        node, key = self.items[name], self.sub(name)
        if isinstance(node, yaml.ScalarNode) and self.ctx.scalar(node, key) == "all":
            return None
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.ctx.error(
                node, key, "must be a non-empty list of 1-based call numbers, or `all`"
            )
        calls = []
        for item in node.value:
            value = self.ctx.scalar(item, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.ctx.error(
                    item, key, f"{value!r} is not a call number; use integers >= 1"
                )
            calls.append(value)
        return tuple(sorted(set(calls)))

    def missing(self, name: str, choices: tuple[str, ...]) -> None:
        """A required key (:data:`harness.fields.REQUIRED`, or a union's tag) not given."""
        if name not in self.items:
            message = f"missing; use one of: {', '.join(choices)}"
            raise ScenarioError(self.ctx.path, self.line, self.sub(name), message)

    def refuse(self, problem: Problem) -> ScenarioError:
        """The error for a rule the section's value broke (:class:`harness.fields.Problem`)."""
        key = self.key if problem.key is None else self.sub(problem.key)
        line = self.line
        if problem.key is not None and problem.at != "section":
            at = self.items[problem.key].start_mark.line + 1
            line = self.key_lines[problem.key] if problem.at == "key" else at
        return ScenarioError(self.ctx.path, line, key, problem.message)


class _Context:
    def __init__(self, path: str, loader: yaml.SafeLoader) -> None:
        self.path = path
        self.loader = loader

    def error(self, node: yaml.Node, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.path, node.start_mark.line + 1, key, message)

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, key, f"must be a single value, got {_kind(node)}")
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            # `!!int three`, `!!float x`, an integer longer than Python converts, ...
            tag = node.tag.removeprefix("tag:yaml.org,2002:")
            message = f"cannot read {_short(node.value)!r} as {tag}: {exc}"
            raise self.error(node, key, message) from exc


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {_short(node.value)!r}"


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def load_scenario(path: str | Path, *, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> Scenario:
    """Load and validate one scenario file; raise :class:`ScenarioError` on any problem.

    A scenario whose :func:`planned_duration_s` exceeds ``max_duration_s`` is refused.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), 0, "", f"cannot read the file: {exc}") from exc
    return parse_scenario(
        text, path=str(path), default_name=path.stem, max_duration_s=max_duration_s
    )


def parse_scenario(
    text: str,
    *,
    path: str = "<string>",
    default_name: str = "scenario",
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
) -> Scenario:
    """Validate scenario YAML ``text``; ``path`` only labels error messages."""
    _check_shape(text, path)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise _invalid_yaml(exc, path) from exc
    finally:
        loader.dispose()
    if root is None:
        raise ScenarioError(path, 1, "version", "the file is empty; it needs at least `version: 1`")
    top = _Section(_Context(path, loader), root, "")
    scenario = _build(top, path, default_name)
    _check_duration(scenario, top, max_duration_s)
    return scenario


def _check_shape(text: str, path: str) -> None:
    """Refuse deep nesting and tags from the event stream, before anything recurses."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else 0
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _CORE_TAGS:  # `!!x` arrives expanded
                raise ScenarioError(
                    path, line, "", f"the tag {tag!r} is not allowed; remove it (plain values only)"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ScenarioError(
                        path, line, "", f"nested deeper than {MAX_DEPTH} levels; a scenario needs 4"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _invalid_yaml(exc, path) from exc


def _invalid_yaml(exc: yaml.YAMLError, path: str) -> ScenarioError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        return ScenarioError(path, line, "", f"not valid YAML: {exc.problem}")
    return ScenarioError(path, 0, "", f"not valid YAML: {exc}")


def _check_duration(scenario: Scenario, top: _Section, limit_s: float) -> None:
    planned = planned_duration_s(scenario)
    if planned > limit_s:
        line = top.key_lines.get("session", top.line)
        raise ScenarioError(
            top.ctx.path,
            line,
            "session",
            f"plans to run {planned:,.0f} s, over the limit of {limit_s:,.0f} s; "
            "lower turns, gaps or delays, or raise the limit with --max-duration SECONDS",
        )


def _build(top: _Section, path: str, default_name: str) -> Scenario:
    top.finish(("version", *(n for n in field_names(Scenario) if n not in ("version", "path"))))
    version_node = top.items.get("version")
    if version_node is None:
        raise ScenarioError(path, top.line, "version", "missing; add `version: 1` at the top")
    version = top.ctx.scalar(version_node, "version")
    if type(version) is not int or version != 1:  # `version: yes` is True, and True == 1
        shown = repr(version_node.value) if isinstance(version, bool) else repr(version)
        raise top.ctx.error(version_node, "version", f"{shown} is not supported; use 1")
    values = _given(Scenario, top, None, skip=("version", "variants", "path"))
    name = values.pop("name", "") or default_name
    return Scenario(name=name, **values, variants=_variants(top), path=path)


def _value(cls: Any, sec: _Section | None, up: Any = None) -> Any:
    """Section ``sec`` as dataclass ``cls`` (absent: its defaults), or as the member of the
    tagged union ``cls`` its tag names. ``up``: the value of the section holding it."""
    if sec is None:
        return cls()
    tag = None
    if get_origin(cls) is types.UnionType:  # the tag picks the class, and so the keys allowed
        cls, tag, allowed = _tagged(cls, sec)
        sec.finish(allowed)
    else:
        sec.finish(field_names(cls))
    hints, fields = get_type_hints(cls), dataclasses.fields(cls)
    for f in fields:
        if f.metadata.get("required"):
            sec.missing(f.name, get_args(hints[f.name]))
    # Lists and kwargs come after the other keys and the section's rule (events are checked
    # against the turns), a mapping's shape first: the order errors have always come in.
    later = [f for f in fields if get_origin(hints[f.name]) is tuple or "section" in f.metadata]
    for f in later:
        if "section" in f.metadata:
            sec.section(f.name)
    value = cls(**_given(cls, sec, up, skip=(tag, *(f.name for f in later))))
    problem = value.problem(sec.items.keys(), up) if hasattr(value, "problem") else None
    if problem is not None:
        raise sec.refuse(problem)
    rest = {
        f.name: sec.read(f.name, hints[f.name], f.metadata, value)
        for f in later
        if f.name in sec.items
    }
    value = dataclasses.replace(value, **rest) if rest else value
    # A rule about the lists themselves (a timeline must not be empty), once they are read.
    problem = value.list_problem(sec.items.keys(), up) if hasattr(value, "list_problem") else None
    if problem is not None:
        raise sec.refuse(problem)
    return value


def _given(cls: type[Any], sec: _Section, up: Any, skip: tuple[str | None, ...] = ()) -> Any:
    """The fields of ``cls`` that ``sec`` sets, read in declared order."""
    hints = get_type_hints(cls)
    return {
        f.name: sec.read(f.name, hints[f.name], f.metadata, up)
        for f in dataclasses.fields(cls)
        if f.name in sec.items and f.name not in skip
    }


def _tagged(union: Any, sec: _Section) -> tuple[type[Any], str, tuple[str, ...]]:
    """The member of ``union`` that ``sec``'s tag names, the tag, and the keys it allows:
    the tag, then the keys every member shares, then its own."""
    tag, kinds, members = tagged(union)
    shared = [n for n in field_names(members[0]) if all(n in field_names(m) for m in members)]
    sec.missing(tag, kinds)
    cls = members[kinds.index(sec.choice(tag, kinds))]
    first = (tag, *(n for n in shared if n != tag))
    return cls, tag, (*first, *(n for n in field_names(cls) if n not in first))


def _variant_names() -> str:
    """The bundled names, each async twin folded into its sync name (a one-line message)."""
    sync = [name for name in BUNDLED if f"{name}-async" in BUNDLED]
    single = [
        name for name in BUNDLED if name not in sync and name.removesuffix("-async") not in sync
    ]
    return ", ".join(sync) + " (each also as NAME-async)" + "".join(f", {n}" for n in single)


def _variants(top: _Section) -> Mapping[str, Expectation]:
    sec = top.section("variants")
    if sec is None:
        return MappingProxyType({})
    out: dict[str, Expectation] = {}
    for name in sec.items:
        if ":" not in name and name not in BUNDLED:
            message = f"unknown variant; use one of: {_variant_names()}, or a factory spec"
            message += " `module:function` / `path/to/file.py:function`"
            raise ScenarioError(sec.ctx.path, sec.key_lines[name], sec.sub(name), message)
        out[name] = sec.choice(name, get_args(Expectation))
    if not out:
        raise ScenarioError(
            sec.ctx.path, sec.line, "variants", "is empty; list at least one variant"
        )
    return MappingProxyType(out)
