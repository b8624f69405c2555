"""results.json validation, derived from the result dataclasses themselves.

A results.json may be edited by hand or written by another version, so before any value is
built :func:`check` walks the data alongside the type hints of the dataclass it should become
(:class:`~harness.verdict.RegressSummary` -> ``RegressEntry`` -> ``RunResult`` ...). A field
with no default is required, one with a default is optional; a key that is neither a field
nor a property (``to_dict`` also writes properties such as ``as_expected``) is refused. A
field added to a result class is therefore validated without touching this module.

The first mismatch raises :class:`SchemaMismatch` naming the field by its JSON path:
``entries[0].runs[1].errors: expected an integer, got the string '3'``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["SchemaMismatch", "check"]

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


class SchemaMismatch(ValueError):
    """Data that does not fit the dataclass; ``field`` is the JSON path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check(cls: type, data: object, *, allowed: frozenset[str] = frozenset()) -> None:
    """Raise :class:`SchemaMismatch` unless ``data`` fits dataclass ``cls``; ``allowed``
    names extra top-level keys (``schema``)."""
    _dataclass(cls, data, "", allowed)


def _dataclass(cls: type, data: object, where: str, allowed: frozenset[str]) -> None:
    if not isinstance(data, dict):
        raise SchemaMismatch(where or "(top)", f"expected an object, got {_shown(data)}")
    hints, required, known = _shape(cls)
    for name in required:
        if name not in data:
            raise SchemaMismatch(_join(where, name), "missing (a required field)")
    for key, value in data.items():
        if key in hints:
            _value(hints[key], value, _join(where, key))
        elif key not in known and key not in allowed:
            raise SchemaMismatch(_join(where, str(key)), f"unknown field in {cls.__name__}")


@functools.cache
def _shape(cls: type) -> tuple[dict[str, Any], tuple[str, ...], frozenset[str]]:
    """(field -> type hint, required fields, read-only properties) of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    required = tuple(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    properties = frozenset(n for n, v in vars(cls).items() if isinstance(v, property))
    return {n: h for n, h in hints.items() if n in names}, required, properties


def _value(hint: Any, value: object, where: str) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if dataclasses.is_dataclass(hint):
        _dataclass(typing.cast(type, hint), value, where, frozenset())
    elif origin in (types.UnionType, typing.Union):
        _union(args, value, where)
    elif origin is Literal:
        if value not in args or isinstance(value, bool) != isinstance(args[0], bool):
            choices = ", ".join(repr(a) for a in args)
            raise SchemaMismatch(where, f"expected one of {choices}, got {_shown(value)}")
    elif origin is tuple:
        _sequence(args, value, where)
    elif origin is Mapping or origin is dict:
        _mapping(args[1], value, where)
    else:
        _scalar(hint, value, where)


def _union(args: tuple[Any, ...], value: object, where: str) -> None:
    if value is None and type(None) in args:
        return
    _value(next(a for a in args if a is not type(None)), value, where)


def _sequence(args: tuple[Any, ...], value: object, where: str) -> None:
    if not isinstance(value, list):
        raise SchemaMismatch(where, f"expected a list, got {_shown(value)}")
    homogeneous = len(args) == 2 and args[1] is Ellipsis
    if not homogeneous and len(value) != len(args):
        raise SchemaMismatch(where, f"expected a list of {len(args)}, got {len(value)} items")
    for index, element in enumerate(value):
        _value(args[0] if homogeneous else args[index], element, f"{where}[{index}]")


def _mapping(item: Any, value: object, where: str) -> None:
    if not isinstance(value, dict):
        raise SchemaMismatch(where, f"expected an object, got {_shown(value)}")
    for key, element in value.items():
        _value(item, element, _join(where, key))


def _scalar(hint: Any, value: object, where: str) -> None:
    # bool is an int in Python, but `true` is no count; an int is a fine float.
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:
        raise TypeError(
            f"{where}: no schema check for type {hint!r}; extend report/results_schema.py"
        )
    if not ok:
        raise SchemaMismatch(where, f"expected {_NAMES[hint]}, got {_shown(value)}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _shown(value: object) -> str:
    kind = {str: "the string", bool: "the boolean", type(None): "null", list: "a list"}
    text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return f"{kind.get(type(value), type(value).__name__)} {text}"
