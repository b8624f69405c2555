"""The bisect's private virtualenv for ``--install``: the harness's own environment is never
written to.

Theory of operation
-------------------
With ``--install``, the driver builds one virtualenv per bisect in its temporary directory,
beside the private clone (:func:`build`): with ``uv venv`` when ``uv`` is on ``PATH``, else
``python -m venv``, for the interpreter that runs ``harness bisect``. A path file makes that
interpreter's packages (the harness and its dependencies) importable in the venv *after* the
venv's own site-packages, so whatever the project's install puts into the venv shadows them
(a project that pins ``openai<3`` runs on its 2.x there), while nothing is written outside the
venv: pip refuses to uninstall a package outside its environment, and uv sees only the
venv's own. When the command uses pip and the harness's interpreter has none to share, pip is
seeded once from Python's bundled wheel (``ensurepip``: no network).

The install command and the oracle then run with the venv's python as ``$HARNESS_PYTHON``, its
``bin`` first on ``PATH`` and ``VIRTUAL_ENV`` set (:func:`venv_env`). The install runs at a
commit only when its dependency files (:func:`is_dependency_file`) differ from those of the
last commit whose install succeeded (:func:`dependency_key`). The venv is removed with the
temporary directory: at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Final

from harness.bisect.step import run_logged
from harness.errors import HarnessError

__all__ = ["DEPENDENCY_FILES", "build", "dependency_key", "is_dependency_file", "venv_env"]

# file names (shell patterns) whose change means "install again"
DEPENDENCY_FILES = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements*.txt",
    "requirements*.in",
    "constraints*.txt",
    "uv.lock",
    "poetry.lock",
    "pdm.lock",
    "Pipfile",
    "Pipfile.lock",
)


def is_dependency_file(path: str) -> bool:
    """Whether ``path`` (relative, ``/``-separated) declares or pins dependencies: one of
    :data:`DEPENDENCY_FILES` at any depth, or a ``.txt``/``.in`` file in a ``requirements/``
    folder."""
    p = PurePosixPath(path)
    if any(fnmatch.fnmatchcase(p.name, pattern) for pattern in DEPENDENCY_FILES):
        return True
    return "requirements" in p.parts[:-1] and p.suffix in (".txt", ".in")


def dependency_key(files: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The dependency files of a commit (``files``: path -> blob id) as a comparable value;
    equal keys mean the same dependency files, byte for byte."""
    return tuple(sorted((path, blob) for path, blob in files.items() if is_dependency_file(path)))


# Variables that aim an installer or interpreter at another environment than VIRTUAL_ENV
# (nox sets UV_PYTHON to its own venv: `uv pip install` would then write there).
_ELSEWHERE: Final = frozenset(
    {"PYTHONHOME", "UV_PYTHON", "UV_SYSTEM_PYTHON", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX"}
)


def build(venv: Path, *, log: Path, seed_pip: bool) -> Path:
    """Create the private venv at ``venv`` (see the module docstring); return its python.
    ``log`` receives the tools' output; a failure raises HarnessError naming it."""
    # without VIRTUAL_ENV: uv would otherwise aim at the harness's own venv
    env = {k: v for k, v in os.environ.items() if k not in _ELSEWHERE | {"VIRTUAL_ENV"}}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    uv = shutil.which("uv")
    argv = (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)]
        if uv
        else [sys.executable, "-m", "venv", "--without-pip", str(venv)]
    )
    _run(argv, venv.parent, env, log, "create the install virtualenv")
    python = venv / "bin" / "python"
    purelib = Path(_scheme_path(python, env, log, venv))
    outer = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    # `import site` lines in a .pth run at startup: the outer folders (and their own .pth
    # files, e.g. an editable harness) come after the venv's site-packages on sys.path
    lines = [f"import site; site.addsitedir({p!r})" for p in outer]
    (purelib / "_harness_outer.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if seed_pip and importlib.util.find_spec("pip") is None:
        _run([str(python), "-m", "ensurepip", "--default-pip"], venv, env, log, "seed pip")
    return python


def venv_env(env: Mapping[str, str], venv: Path) -> dict[str, str]:
    """``env`` (the checker's environment) aimed at the private venv: ``HARNESS_PYTHON`` its
    python, ``VIRTUAL_ENV`` its root, its ``bin`` first on ``PATH``, no variable that aims
    elsewhere (``UV_PYTHON``, ``CONDA_PREFIX``, ``PYTHONHOME``...); the rest unchanged."""
    bindir = str(venv / "bin")
    path = [bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir)]
    out = {k: v for k, v in env.items() if k not in _ELSEWHERE}
    out.update(
        HARNESS_PYTHON=str(venv / "bin" / "python"),
        VIRTUAL_ENV=str(venv),
        PATH=os.pathsep.join(path),
    )
    return out


def _scheme_path(python: Path, env: Mapping[str, str], log: Path, venv: Path) -> str:
    out = venv.parent / "purelib.txt"
    code = "import sys, sysconfig; open(sys.argv[1], 'w').write(sysconfig.get_paths()['purelib'])"
    _run([str(python), "-c", code, str(out)], venv, env, log, "locate the venv's site-packages")
    return out.read_text(encoding="utf-8")


def _run(argv: list[str], cwd: Path, env: Mapping[str, str], log: Path, what: str) -> None:
    with log.open("ab") as sink:
        sink.write(f"$ {' '.join(argv)}\n".encode())
    part = log.with_suffix(".part")
    code = run_logged(argv, cwd=cwd, env=env, log=part)
    text = part.read_bytes()
    part.unlink()
    with log.open("ab") as sink:
        sink.write(text)
    if code != 0:
        last = text.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
        raise HarnessError(f"cannot {what} (exit {code}): {last[0]}; see {log}")
