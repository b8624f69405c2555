"""Checking a gateway's client factory from its own test suite (the library under the plugin).

:func:`check_factory` runs one scenario against a factory, given as a spec string or as a
callable, in a worker process, exactly as ``harness run`` does, and returns a
:class:`Checked` value: the CLI's own :class:`~harness.result.RunResult` and
:class:`~harness.verdict.Verdict`. :func:`assert_healthy` fails with the verdict's reasons and
the per-turn table. :func:`server_spec` builds a mock server's :class:`ServerSpec` from a
scenario file, a ``server:`` mapping or keyword arguments. The pytest fixtures in
:mod:`harness.pytest_plugin` are thin wrappers around these.

A callable runs in the worker too (module-level state and GC settings must not leak between
tests), so it must be importable there: it is turned into a ``module:function`` spec with the
directory its module imports from as root, or into ``/path/file.py:function`` when its module
cannot be imported by name (a ``__main__`` script). Lambdas, closures and methods cannot be
named that way and are refused with a :class:`~harness.errors.FactoryError`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from harness import bundled
from harness.errors import FactoryError, ScenarioError, UsageError
from harness.report.text import held_by_lines, run_totals, turn_table
from harness.result import RunResult
from harness.runner import run_one
from harness.scenario import Scenario, ServerSpec, load_scenario, parse_scenario
from harness.verdict import Verdict, judge
from harness.zygote import ZygotePool

__all__ = [
    "Checked",
    "assert_healthy",
    "bundled_scenario_dir",
    "bundled_scenarios",
    "check_factory",
    "factory_spec",
    "resolve_scenario",
    "server_spec",
]

_MAPPING = "<server mapping>"
ScenarioRef = str | Path | Scenario
FactoryRef = str | Callable[..., Any]


def bundled_scenario_dir() -> Path:
    """The folder of the bundled scenarios (:func:`harness.bundled.directory`)."""
    return bundled.directory()


def bundled_scenarios() -> list[str]:
    """The names of the bundled scenarios, sorted."""
    return bundled.names()


def resolve_scenario(scenario: ScenarioRef) -> Scenario:
    """A :class:`Scenario` as is, else the file a path or a bundled scenario's name names
    (:func:`harness.bundled.resolve`: an existing path wins)."""
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(bundled.resolve(scenario))


def server_spec(source: ScenarioRef | Mapping[str, Any] | None = None, **keys: Any) -> ServerSpec:
    """A mock server's spec: a scenario's ``server:`` (a :class:`Scenario`, a bundled name or a
    file), or a ``server:`` mapping, or the mapping's keys as keyword arguments (``keys``
    update a mapping ``source``). Validated as a scenario file would be."""
    if source is not None and not isinstance(source, Mapping):
        if keys:
            raise UsageError(
                f"server keys {sorted(keys)} given with scenario {str(source)!r}; "
                "give a scenario or server keys, not both"
            )
        return resolve_scenario(source).server
    mapping = {**(source or {}), **keys}
    text = yaml.safe_dump({"version": 1, "server": mapping}, sort_keys=False)
    try:
        return parse_scenario(text, path=_MAPPING).server
    except ScenarioError as exc:  # a line of YAML the caller never wrote means nothing
        raise ScenarioError(_MAPPING, 0, exc.key, exc.message) from exc


def factory_spec(factory: FactoryRef, root: Path) -> tuple[str, Path]:
    """``(spec, root)`` for :func:`run_one`: a string is used as is, with ``root``; a callable
    becomes a spec its worker can import (see the module docstring)."""
    if isinstance(factory, str):
        return factory, root
    name = getattr(factory, "__qualname__", None)
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    if not name or "<" in name or "." in name or module is None:
        raise FactoryError(
            f"factory {factory!r} cannot run in a worker process: it is a lambda, a closure, "
            "a method or has no module; define it as a module-level function in an importable "
            "file, or pass a spec string ('package.module:function' or 'path/file.py:function')"
        )
    if getattr(module, name, None) is not factory:
        raise FactoryError(
            f"factory {name!r} is not the attribute {name!r} of module {module.__name__!r}; "
            "pass the module-level function itself"
        )
    file = getattr(module, "__file__", None)
    if file is None:
        raise FactoryError(f"factory {name!r}: module {module.__name__!r} has no file to import")
    path = Path(file).resolve()
    import_root = _import_root(module.__name__, path)
    if import_root is None:  # e.g. __main__, or a name the file path does not spell
        return f"{path}:{name}", path.parent
    return f"{module.__name__}:{name}", import_root


def _import_root(module_name: str, path: Path) -> Path | None:
    """The sys.path entry ``module_name`` imports from, if ``path`` spells that name."""
    place = path.parent if path.stem == "__init__" else path.with_suffix("")
    for part in reversed(module_name.split(".")):
        if place.name != part:
            return None
        place = place.parent
    return place


def check_factory(
    factory: FactoryRef,
    scenario: ScenarioRef,
    *,
    root: Path | None = None,
    expected: Literal["pass", "fail", "observe"] | None = None,
    watchdog_s: float | None = None,
    attribute: bool = False,
    workers: ZygotePool | None = None,
) -> Checked:
    """Run ``scenario`` against ``factory`` in a worker process and judge it (``expected``:
    the factory's role; by default the one ``harness run --factory`` gives it, the role the
    scenario's ``variants:`` lists for its spec, else ``pass``, events or not; ``attribute``:
    say who holds leaked sockets, docs/attribution.md). With ``workers`` (the plugin passes
    its session's), the checks after the first fork their workers from one zygote."""
    loaded = resolve_scenario(scenario)
    spec, run_root = factory_spec(factory, Path.cwd() if root is None else root)
    if expected is None:
        expected = loaded.role_of(spec, named=True)
    zygote = None if workers is None else workers.get(run_root)
    result = run_one(
        loaded, spec, root=run_root, watchdog_s=watchdog_s, attribute=attribute, zygote=zygote
    )
    return Checked(loaded, result, judge(result, loaded.expect, expected))


@dataclass(frozen=True)
class Checked:
    """One checked run: the scenario, the CLI's RunResult and Verdict for it."""

    scenario: Scenario
    result: RunResult
    verdict: Verdict

    @property
    def healthy(self) -> bool:
        return self.verdict.healthy

    def explain(self) -> str:
        """The verdict's reasons, one a line, then the per-turn table and totals that
        ``harness run`` prints."""
        r = self.result
        head = (
            f"{r.variant} on {r.scenario} ({r.client_kind or 'no'} client): "
            f"{self.verdict.outcome}, expected {self.verdict.expected}"
        )
        reasons = [f"  - {reason}" for reason in self.verdict.reasons] or ["  (no reasons)"]
        held = held_by_lines(r)  # with attribute=True: who holds the leaked sockets
        return "\n".join([head, *reasons, "", turn_table(r), run_totals(r), *([held] * bool(held))])


def assert_healthy(checked: Checked) -> None:
    """Raise ``AssertionError`` with :meth:`Checked.explain` unless the run was healthy."""
    if not checked.healthy:
        raise AssertionError(checked.explain())
