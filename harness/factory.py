"""Resolve a factory spec to the client factory it names.

A spec is one of (docs/factories.md):

- a bundled variant name, e.g. ``keepalive-fixed``;
- ``package.module:function``, imported with ``root`` (the checkout under test) first on
  ``sys.path``;
- ``path/to/file.py:function``, a file relative to ``root``, or at an absolute path: an
  adapter kept outside the repository that imports the checkout under test (e.g. to call a
  method of a class whose ``__init__`` is too costly to run).

Every failure, including an exception raised while importing user code, becomes one
:class:`~harness.errors.FactoryError` line saying which spec, what failed and what to do.
``root`` is moved to the front of ``sys.path`` and stays there afterwards: whatever the spec
imports (also from an adapter outside ``root``) comes from the checkout under test first, and
factories may import their siblings lazily.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.errors import FactoryError
from harness.variants import BUNDLED, is_bundled, module_name

__all__ = ["TERMINATE_HOOK", "Factory", "check_spec", "resolve_factory", "terminate_hook"]

# create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI
Factory = Callable[..., Any]
# Optional, in the factory's module: how its gateway terminates a client, sync or async.
TERMINATE_HOOK = "terminate_openai_client"


def terminate_hook(factory: Factory) -> Callable[..., Any] | None:
    """The ``terminate_openai_client(client, *, shared)`` defined beside ``factory``, if any.

    Looked up in the module the factory was defined in, so every spec form finds it; the
    gateway closes the client itself (``close()``) when there is none.
    """
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    hook = getattr(module, TERMINATE_HOOK, None) if module is not None else None
    return hook if callable(hook) else None


_FORMS = (
    "a bundled variant ({}), `package.module:function` or `path/to/file.py:function` "
    "(relative to --root, or absolute)"
)


def resolve_factory(spec: str, root: Path) -> Factory:
    """The factory ``spec`` names; raises :class:`FactoryError` when it cannot be had."""
    if is_bundled(spec):
        return _attribute(spec, _import(spec, module_name(spec), root), "create_openai_client")
    target, attr, is_file = _parts(spec)
    # an absolute file target stays as is under `root /`
    module = _load_file(spec, root / target, root) if is_file else _import(spec, target, root)
    return _attribute(spec, module, attr)


def check_spec(spec: str, root: Path) -> None:
    """The :class:`FactoryError` of :func:`resolve_factory` that needs no import (a spec of
    no known form, a file that is not there), so a command can refuse a mistyped spec before
    any worker starts; nothing of the user's code runs here."""
    if is_bundled(spec):
        return
    target, _, is_file = _parts(spec)
    if is_file and not (root / target).is_file():
        raise _no_file(spec, root / target)


def _parts(spec: str) -> tuple[str, str, bool]:
    """(module or file, function, whether it names a file) of a non-bundled ``spec``."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise FactoryError(
            f"factory {spec!r}: not a known variant or spec; "
            f"use {_FORMS.format(', '.join(BUNDLED))}"
        )
    return target, attr, target.endswith(".py") or "/" in target or "\\" in target


_FILE_MODULE_PREFIX = "_harness_factory_"


def _with_root(root: Path) -> None:
    entry = str(root.resolve())
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _import(spec: str, name: str, root: Path) -> ModuleType:
    _with_root(root)
    try:
        return importlib.import_module(name)
    except Exception as exc:  # user code may raise anything while importing
        raise FactoryError(
            f"factory {spec!r}: cannot import module {name!r} (root {str(root)!r}): "
            f"{type(exc).__name__}: {exc}; check the spec and --root"
        ) from exc


def _no_file(spec: str, path: Path) -> FactoryError:
    return FactoryError(
        f"factory {spec!r}: no file {str(path)!r}; a relative path is relative to --root "
        "(the checkout under test), an absolute one is used as is"
    )


def _load_file(spec: str, path: Path, root: Path) -> ModuleType:
    if not path.is_file():
        raise _no_file(spec, path)
    # A stable, unique module name per file, so two checkouts never share a module.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"{_FILE_MODULE_PREFIX}{path.stem}_{digest}"
    _with_root(root)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise FactoryError(f"factory {spec!r}: {str(path)!r} is not a loadable Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # user code may raise anything while importing
        del sys.modules[name]
        raise FactoryError(
            f"factory {spec!r}: importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _attribute(spec: str, module: ModuleType, attr: str) -> Factory:
    factory = getattr(module, attr, None)
    if factory is None:
        # a file's module has an internal name: name the file the user wrote instead
        where = getattr(module, "__file__", None) if _is_file_module(module) else None
        what = f"{where!r}" if where else f"module {module.__name__!r}"
        raise FactoryError(
            f"factory {spec!r}: {what} has no function {attr!r}; "
            "check the name after ':' in the spec"
        )
    if not callable(factory):
        raise FactoryError(
            f"factory {spec!r}: {attr!r} is a {type(factory).__name__}, not a function"
        )
    _check_signature(spec, factory)
    _check_hook(spec, module)
    return factory  # type: ignore[no-any-return]


def _check_hook(spec: str, module: ModuleType) -> None:
    """A ``terminate_openai_client`` beside the factory must take ``(client, *, shared)``."""
    hook = getattr(module, TERMINATE_HOOK, None)
    if hook is None:
        return
    if not callable(hook):
        raise FactoryError(
            f"factory {spec!r}: {TERMINATE_HOOK!r} is a {type(hook).__name__}, not a function"
        )
    try:
        inspect.signature(hook).bind(object(), shared=True)
    except TypeError as exc:
        raise FactoryError(
            f"factory {spec!r}: {TERMINATE_HOOK}{inspect.signature(hook)} does not accept "
            f"(client, *, shared): {exc}"
        ) from exc
    except ValueError:
        return  # no signature to read (a builtin); the first terminate will tell


def _is_file_module(module: ModuleType) -> bool:
    return module.__name__.startswith(_FILE_MODULE_PREFIX)


def _check_signature(spec: str, factory: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # builtins and some C callables have none; the first call will tell
    try:
        signature.bind({}, shared=True)
    except TypeError as exc:
        raise FactoryError(
            f"factory {spec!r}: {signature} does not accept (client_kwargs, *, shared): {exc}"
        ) from exc
