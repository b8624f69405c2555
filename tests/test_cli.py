"""One command layer: every subcommand is one typed Command value; the CLI reads only those."""

from __future__ import annotations

import ast
import dataclasses
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness.commands
from harness import cli
from harness.commands.base import Command
from harness.commands.registry import LISTED, all_commands

COMMANDS = all_commands()

PACKAGE = Path(harness.commands.__file__).resolve().parent.parent


def test_every_command_module_exposes_one_command_in_the_registry() -> None:
    modules = sorted(
        m.name.removesuffix("_")  # import_: `import` is a keyword
        for m in pkgutil.iter_modules(harness.commands.__path__)
        if not m.name.startswith("_") and m.name not in ("base", "registry")
    )
    assert sorted(c.name for c in COMMANDS) == modules
    assert [c.name for c in COMMANDS] == [
        "run", "regress", "check", "bisect", "shrink", "watch", "import", "serve", "validate",
        "scenarios", "report", "compare",
    ]  # fmt: skip
    assert all(isinstance(c, Command) for c in COMMANDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        COMMANDS[0].name = "other"  # type: ignore[misc]
    assert {c.name: c.usage_exit for c in COMMANDS if c.usage_exit != 2} == {"check": 125}
    assert [(c.name, c.help) for c in COMMANDS] == [(x.name, x.help) for x in LISTED]


@pytest.mark.parametrize(
    ("argv", "imported"),
    [
        (["--help"], set()),
        (["check", "--help"], {"check"}),
        (["validate", "scenarios"], {"validate"}),
        (["nope"], set()),
    ],
)
def test_a_command_line_imports_only_the_command_it_names(
    argv: list[str], imported: set[str]
) -> None:
    """`harness check` (the bisect oracle, once per step) does not pay for the bisect driver,
    the report renderers or any other command's imports; `--help` imports none."""
    script = (
        "import sys\n"
        "from harness import cli\n"
        f"try:\n    cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
        "names = {'harness.commands.' + x.module: x.name for x in cli.LISTED}\n"
        "print(sorted(names[m] for m in sys.modules if m in names))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == repr(sorted(imported))


# just enough for each parser to get past its required arguments
REQUIRED = {
    "run": ["s.yaml", "--variant", "baseline"],
    "check": ["--scenario", "s.yaml", "--factory", "f:g"],
    "bisect": [
        "--repo",
        ".",
        "--good",
        "a",
        "--bad",
        "b",
        "--scenario",
        "s.yaml",
        "--factory",
        "f:g",
    ],
    "shrink": ["s.yaml", "--factory", "f:g"],
    "validate": ["s.yaml"],
    "report": ["r.json"],
    "compare": ["a.json", "b.json"],
    "watch": ["--pid", "1"],
    "import": ["t.jsonl"],
}


@pytest.mark.parametrize(("name", "code"), [(c.name, c.usage_exit) for c in COMMANDS])
def test_a_bad_flag_exits_with_the_command_usage_code(
    name: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([name, *REQUIRED.get(name, []), "--no-such-flag"])
    assert exc.value.code == code
    assert (
        capsys.readouterr().err
        == f"harness {name}: error: unrecognized arguments: --no-such-flag\n"
    )


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from x import y`` counts as ``x`` and ``x.y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_cli_imports_the_command_layer() -> None:
    # commands parse arguments and print what the library renders; the library (testing.py,
    # the plugin, report/, bisect/) never reaches back into a command module
    outside = [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "commands" not in path.relative_to(PACKAGE).parts and path.name != "cli.py"
    ]
    assert len(outside) > 20 and PACKAGE / "testing.py" in outside
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in _imports(path) if (m + ".").startswith("harness.commands.")
        )
        for path in outside
    }
    assert {k: v for k, v in offenders.items() if v} == {}
