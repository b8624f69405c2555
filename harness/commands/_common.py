"""Pieces the run/regress/check/validate commands share: arguments, discovery, tables."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness import bundled
from harness.environment import fingerprint
from harness.errors import FactoryError, UsageError
from harness.factory import check_spec
from harness.matrix import MatrixOutcome
from harness.planned import DEFAULT_MAX_DURATION_S
from harness.report.layout import atomic_write_text, new_run_id
from harness.scenario import Scenario, load_scenario
from harness.shard import Shard
from harness.verdict import RegressSummary

__all__ = [
    "Start",
    "add_attribute_argument",
    "add_max_duration_argument",
    "add_output_arguments",
    "add_report_dir_argument",
    "add_root_argument",
    "add_wide_argument",
    "build_summary",
    "check_output_paths",
    "discover",
    "load_all",
    "monotonic",
    "positive_int",
    "refuse_bad_spec",
    "refuse_untestable",
    "scenario_file",
    "start",
    "utc_now",
    "write_json",
]

SCENARIO_SUFFIXES = (".yaml", ".yml")


def discover(paths: Iterable[str]) -> list[Path]:
    """Scenario files named by ``paths``: files as given, folders searched (sorted), bundled
    scenario names (:func:`harness.bundled.resolve`: a path wins); no ``paths`` means the
    bundled folder. A file named twice is kept once, where it first appears."""
    paths = list(paths) or [str(bundled.directory())]
    found: dict[Path, Path] = {}
    for raw in paths:
        path = bundled.resolve(raw)
        for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if p.suffix in SCENARIO_SUFFIXES or p is path:
                found.setdefault(p.resolve(), p)
    if not found:
        raise UsageError(f"no scenario files (*.yaml) in {', '.join(map(str, paths))}")
    return list(found.values())


def named_files(paths: Iterable[str]) -> frozenset[Path]:
    """The scenario files ``paths`` name one by one (a file or a bundled name, resolved),
    not those found by searching a folder: what the user asked about by name."""
    return frozenset(path.resolve() for path in map(bundled.resolve, paths) if not path.is_dir())


def load_all(
    paths: Iterable[str], max_duration_s: float = DEFAULT_MAX_DURATION_S
) -> list[Scenario]:
    """Load every scenario under ``paths`` (see :func:`discover`); the first invalid one
    raises ScenarioError, two files with one scenario name a UsageError."""
    scenarios = [load_scenario(p, max_duration_s=max_duration_s) for p in discover(paths)]
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.name in seen:
            raise UsageError(
                f"{s.path}: scenario name {s.name!r} is already used by {seen[s.name]};"
                " give one of them another `name:`"
            )
        seen[s.name] = s.path
    return scenarios


def scenario_file(text: str | Path) -> Path:
    """The one scenario file a ``SCENARIO``/``--scenario`` argument names: a path, else a
    bundled scenario's name (:func:`harness.bundled.resolve`)."""
    return bundled.resolve(text)


def add_root_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help=f"where {what} (default: current directory)",
    )


def add_max_duration_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-duration",
        type=_seconds,
        default=DEFAULT_MAX_DURATION_S,
        metavar="SECONDS",
        help="refuse a scenario that plans to run longer than this (gaps, latency, stalls;"
        f" default: {DEFAULT_MAX_DURATION_S:g})",
    )


def positive_number(noun: str) -> Callable[[str], float]:
    """An argparse type: a finite number > 0, refused as "'x' is not ``noun`` > 0"."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun} > 0")
        return value

    return parse


_seconds = positive_number("a number of seconds")


def add_attribute_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--attribute",
        action="store_true",
        help="say which HTTP client holds each leaked socket and where it was created "
        "(docs/attribution.md; off by default: it costs a little per client built)",
    )


def add_report_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports"),
        help="where reports/<run-id>/ is written (default: reports)",
    )


def add_wide_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide",
        action="store_true",
        help="every table column, lines unwrapped, whatever the terminal's width "
        "(always so off a terminal)",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--json``, for a machine reading the output."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quiet", "-q", action="store_true", help="print only the report folder, no progress"
    )
    group.add_argument(
        "--json", action="store_true", help="print only the results as JSON (results.json)"
    )


@dataclass(frozen=True)
class Start:
    """When a command began: its run id and ISO time, both stamped at that moment."""

    run_id: str
    started: str  # ISO 8601 UTC
    t0: float  # monotonic()


def start(command: str) -> Start:
    """Stamp the start of ``command``: its run id and ``started`` tell the same time."""
    return Start(new_run_id(command), utc_now(), monotonic())


def build_summary(
    command: str,
    outcome: MatrixOutcome,
    scenarios: Iterable[Scenario],
    begun: Start,
    *,
    shard: Shard | None = None,
) -> RegressSummary:
    """The one value every report writer reads, for a finished (or interrupted) matrix."""
    return RegressSummary(
        run_id=begun.run_id,
        command=command,
        started=begun.started,
        wall_s=round(monotonic() - begun.t0, 3),
        entries=outcome.entries,
        environment=fingerprint(),
        interrupted=outcome.interrupted,
        scenarios={s.name: s.to_dict() for s in scenarios},
        shard=shard,
    )


def check_output_paths(json_file: Path | None, report_dir: Path | None) -> None:
    """Refuse unwritable output paths before any run starts, not after it finished."""
    if json_file is not None and (json_file.is_dir() or not json_file.parent.is_dir()):
        raise UsageError(
            f"--json {str(json_file)!r}: not a file in an existing folder; "
            "create the folder or pick another path"
        )
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {str(report_dir)!r} is a file; pick a folder")


def refuse_bad_spec(spec: str | None, root: Path) -> None:
    """Before anything runs: the UsageError :func:`refuse_untestable` would raise after the
    run for a spec no worker can load whatever it does (no known form, no such file)."""
    if spec is None:
        return
    try:
        check_spec(spec, root)
    except FactoryError as exc:
        raise UsageError(f"{spec}: untestable: {exc}") from None


def refuse_untestable(spec: str, summary: RegressSummary) -> None:
    """UsageError when every run was untestable: the factory itself is unusable (cannot be
    imported, or kills the worker at once), which is bad input, not a verdict."""
    runs = [r for e in summary.entries for r in e.runs]
    if runs and all(r.status == "untestable" for r in runs):
        raise UsageError(f"{spec}: untestable: {runs[0].detail}")


def write_json(path: Path, summary: RegressSummary) -> None:
    """``summary.to_dict()`` as JSON, written atomically."""
    atomic_write_text(path, json.dumps(summary.to_dict(), indent=2) + "\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def monotonic() -> float:
    return time.monotonic()
