"""The scenarios bundled with the harness: where they are, by name, and name-or-path lookup.

Where they live. The top-level ``scenarios/`` folder of the checkout is their one source (what
``nox -s regress`` runs). A build copies it into the package as ``harness/_scenarios/``
(setup.py maps the data-only package ``harness._scenarios`` onto ``scenarios/``), so a wheel
or an sdist-built install holds them beside the code. :func:`directory` looks in two places,
in this order, and takes the first that exists:

1. ``harness/_scenarios`` inside the imported package, read with :mod:`importlib.resources`
   (a wheel or sdist install, and any child process that imports that install);
2. ``scenarios/`` beside the package's folder: a checkout, imported through an editable
   install or through ``PYTHONPATH=<checkout>`` (worker processes, the bisect oracle, see
   :func:`harness.environment.harness_env`). A checkout never has ``harness/_scenarios``.

Both are plain folders on disk (pip and uv unpack wheels), so a bundled scenario is always a
real file whose path can be handed to another process (``harness check --scenario PATH``).

Lookup. :func:`resolve` turns a command-line argument into a file: an existing path wins,
else a bundled scenario's name (its file's stem), else a :class:`~harness.errors.UsageError`
naming the argument and the closest bundled names.
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path
from typing import Final

from harness.errors import UsageError

__all__ = [
    "PACKAGED",
    "SUFFIXES",
    "client_names",
    "directory",
    "names",
    "path_of",
    "resolve",
    "unknown_message",
]

PACKAGED: Final = "_scenarios"  # the folder inside the harness package that a build fills
SUFFIXES: Final = (".yaml", ".yml")


def directory() -> Path:
    """The folder holding the bundled scenarios; :class:`UsageError` when neither exists."""
    packaged = importlib.resources.files("harness") / PACKAGED
    checkout = Path(__file__).resolve().parent.parent / "scenarios"
    for candidate in (packaged, checkout):
        if isinstance(candidate, Path) and candidate.is_dir():
            return candidate
    raise UsageError(
        f"the bundled scenarios are in neither {str(packaged)!r} nor {str(checkout)!r}; "
        "reinstall lifecycle-harness (its wheel holds them) or pass scenario files"
    )


def names() -> list[str]:
    """The bundled scenarios' names (file stems), sorted."""
    return sorted(p.stem for p in directory().iterdir() if p.suffix in SUFFIXES)


def client_names() -> list[str]:
    """The bundled scenarios that judge a client factory, sorted: every one without
    ``session.events`` (those judge how a gateway terminates its provider: see
    :meth:`harness.schema.Scenario.role_of`)."""
    from harness.scenario import load_scenario  # the loader imports far more than this module

    folder = directory()
    return [n for n in names() if not load_scenario(path_of(n) or folder / n).session.events]


def path_of(name: str) -> Path | None:
    """The bundled scenario file called ``name``, or None when there is none."""
    if not name or "/" in name or name.startswith("."):
        return None
    folder = directory()
    return next((p for s in SUFFIXES if (p := folder / f"{name}{s}").is_file()), None)


def resolve(text: str | Path) -> Path:
    """The scenario file ``text`` names: an existing path as given (a path wins over a name),
    else the bundled scenario of that name; else a one-line :class:`UsageError`."""
    path = Path(text)
    if path.exists():
        return path
    found = path_of(str(text))
    if found is not None:
        return found
    raise UsageError(unknown_message(str(text)))


def unknown_message(text: str) -> str:
    """One line: ``text`` is neither a file nor a bundled name; the closest names."""
    close = difflib.get_close_matches(Path(text).stem, names(), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"{text}: no such file or directory, nor a bundled scenario's name; {hint}"
        "`harness scenarios` lists them"
    )
