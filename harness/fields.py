"""How a schema of frozen dataclasses declares its fields, and reading values back by them.

A schema (:mod:`harness.schema`) is frozen dataclasses whose fields say everything about a
key: its type hint (a ``Literal`` is a choice, ``tuple[X, ...]`` a list, ``X | None`` an
optional value, a union of dataclasses a list item told apart by its shared ``Literal`` tag)
and its ``metadata`` (:func:`number`'s range and cast, :data:`REQUIRED`, :func:`section_of`).
Two readers walk those declarations and nothing else: the YAML loader
(:mod:`harness.scenario`, with file:line errors) and :func:`from_plain`, which rebuilds a
value from the JSON-ready data ``to_dict`` made of it (no validation: for values this
program wrote). A rule across fields is a :class:`Problem` a section's method returns.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

__all__ = [
    "REQUIRED",
    "Problem",
    "field_names",
    "from_plain",
    "number",
    "resolve_hints",
    "section_of",
    "tagged",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_HOUR_MS: Final = 3_600_000


def number(default: Any, *, lo: float = 0, hi: float = _HOUR_MS, cast: Any = None) -> Any:
    """A numeric field: its default and its inclusive range, read by the loader; ``cast``
    (e.g. ``float``) converts the value read, for a key handed on as given to the SDK."""
    meta: dict[str, Any] = {"lo": lo, "hi": hi}
    if cast is not None:
        meta["cast"] = cast
    return field(default=default, metadata=meta)


# The metadata of a choice that must be given (``missing; use one of: ...``); its default
# only fills the dataclass.
REQUIRED: Final[Mapping[str, Any]] = MappingProxyType({"required": True})


def section_of(cls: type[Any]) -> Any:
    """A mapping field read as section ``cls``, keeping only the keys the file sets."""
    return field(default_factory=lambda: _EMPTY, metadata={"section": cls})


@dataclass(frozen=True)
class Problem:
    """A rule across a section's fields broken: ``key`` at fault (None: the section), and
    whose line the error names: the key's, its value's, or the section's (a missing key)."""

    key: str | None
    message: str
    at: Literal["key", "value", "section"] = "key"


def field_names(cls: type[Any]) -> tuple[str, ...]:
    """The keys of a section: its dataclass fields, in declared order."""
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def tagged(union: Any) -> tuple[str, tuple[str, ...], tuple[type[Any], ...]]:
    """The tag of a union of dataclasses (the first ``Literal`` field every member has), each
    member's tag value, and the members, in the union's order."""
    members = tuple(m for m in get_args(union) if m is not type(None))
    shared = [n for n in field_names(members[0]) if all(n in field_names(m) for m in members)]
    tag = next(n for n in shared if get_origin(_hints(members[0])[n]) is Literal)
    return tag, tuple(get_args(_hints(m)[tag])[0] for m in members), members


@functools.cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return get_type_hints(cls)


def resolve_hints(hint: Any, _seen: set[Any] | None = None) -> None:
    """Resolve now, and cache, the type hints :func:`from_plain` reads for ``hint`` and every
    dataclass and tagged union inside it (the zygote does it once, not every forked run)."""
    seen = set() if _seen is None else _seen
    if hint in seen:
        return
    seen.add(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        for inner in _hints(hint).values():
            resolve_hints(inner, seen)
        return
    args = get_args(hint)
    if get_origin(hint) is types.UnionType and len([a for a in args if a is not type(None)]) > 1:
        tagged(hint)
    for arg in args:
        resolve_hints(arg, seen)


def from_plain(hint: Any, data: Any) -> Any:
    """The value of type ``hint`` that ``data`` (JSON-ready: lists, dicts) was made from: a
    dataclass from a mapping of its fields (absent ones keep their defaults), a tuple from a
    list, a read-only mapping from a dict, a union member from its tag. A key that is not a
    field is a KeyError, a missing required field or a wrong shape a TypeError, an unknown
    tag a ValueError."""
    origin = get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        cls: Any = hint
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        hints = _hints(cls)
        return cls(**{key: from_plain(hints[key], value) for key, value in data.items()})
    if origin is types.UnionType:
        members = [a for a in get_args(hint) if a is not type(None)]
        if data is None and len(members) < len(get_args(hint)):
            return None
        if len(members) == 1:
            return from_plain(members[0], data)
        tag, kinds, classes = tagged(hint)
        if data[tag] not in kinds:
            raise ValueError(f"{tag} {data[tag]!r} is none of {', '.join(kinds)}")
        return from_plain(classes[kinds.index(data[tag])], data)
    if origin is tuple:
        return tuple(from_plain(get_args(hint)[0], item) for item in data)
    if origin is Mapping:
        return MappingProxyType({k: from_plain(get_args(hint)[1], v) for k, v in data.items()})
    return data
