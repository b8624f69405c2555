"""Bundled scenarios: where they are found (checkout, PYTHONPATH, a wheel's layout, a real
wheel), lookup by name wherever a scenario path goes, ``harness scenarios``, and the run
folders ``harness report`` accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from harness import bundled
from harness.cli import main
from harness.commands._common import discover
from harness.commands.scenarios import first_sentence
from harness.environment import harness_env
from harness.errors import UsageError

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

pytest_plugins = ["pytester"]

CHECKOUT = Path(__file__).resolve().parent.parent
SCENARIOS = CHECKOUT / "scenarios"
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
GOLDEN = CHECKOUT / "tests" / "data" / "results.json"
GOLDEN_RUN = "20261124T150000Z-regress"
ONE_TURN = "version: 1\nsession: {turns: 1}\nvariants: {baseline: pass}\n"
# Where a child interpreter finds the harness and its scenarios.
WHERE = "import harness, harness.bundled as b; print(harness.__file__); print(b.directory())"


def _child(
    code: str, pythonpath: Path, cwd: Path, *, site: bool, args: list[str] | None = None
) -> list[str]:
    """Run ``code`` (with ``args``) in a new interpreter with only ``pythonpath`` on
    PYTHONPATH (and, with ``site=False``, no site-packages: no editable install to fall back
    on); its stdout's lines, after asserting it exited 0."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    flags = [] if site else ["-S"]
    done = subprocess.run(
        [sys.executable, *flags, "-c", code, *(args or [])],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


# --- where the bundled scenarios are -------------------------------------------------------


def test_in_a_checkout_they_are_the_top_level_scenarios_folder() -> None:
    assert bundled.directory() == SCENARIOS
    assert bundled.names() == NAMES
    assert "use-after-close" in NAMES


def test_a_child_importing_the_checkout_through_pythonpath_finds_them(tmp_path: Path) -> None:
    # As a worker or the bisect oracle does (harness_env), from a folder with no scenarios.
    source = Path(harness_env({})["PYTHONPATH"])
    assert source == CHECKOUT
    out = _child(WHERE, source, tmp_path, site=False)
    assert out == [str(CHECKOUT / "harness" / "__init__.py"), str(SCENARIOS)]


def test_the_packaged_folder_inside_the_package_comes_first(tmp_path: Path) -> None:
    # The layout a wheel installs: harness/_scenarios/*.yaml inside the package.
    site = tmp_path / "site"
    shutil.copytree(CHECKOUT / "harness", site / "harness")
    shutil.copytree(SCENARIOS, site / "harness" / "_scenarios")
    (site / "scenarios").mkdir()  # a stray folder beside the package is not looked at
    out = _child(WHERE, site, tmp_path, site=False)
    assert out == [str(site / "harness" / "__init__.py"), str(site / "harness" / "_scenarios")]


def test_with_neither_folder_the_error_names_both(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(CHECKOUT / "harness", site / "harness")
    code = (
        "from harness import bundled\ntry:\n bundled.directory()\nexcept Exception as e:\n print(e)"
    )
    out = _child(code, site, tmp_path, site=False)
    assert out == [
        f"the bundled scenarios are in neither {str(site / 'harness' / '_scenarios')!r} nor "
        f"{str(site / 'scenarios')!r}; reinstall lifecycle-harness (its wheel holds them) "
        "or pass scenario files"
    ]


# --- lookup by name ------------------------------------------------------------------------


def test_a_name_is_its_bundled_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bundled.resolve("use-after-close") == SCENARIOS / "use-after-close.yaml"
    assert bundled.path_of("use-after-close") == SCENARIOS / "use-after-close.yaml"
    assert [bundled.path_of(x) for x in ("", "../scenarios/use-after-close", ".x")] == [None] * 3


def test_a_path_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("use-after-close").write_text(ONE_TURN, encoding="utf-8")
    assert bundled.resolve("use-after-close") == Path("use-after-close")


def test_an_unknown_name_names_it_and_the_close_names() -> None:
    with pytest.raises(UsageError) as caught:
        bundled.resolve("use-after-clos")
    assert str(caught.value) == (
        "use-after-clos: no such file or directory, nor a bundled scenario's name; "
        "did you mean use-after-close? `harness scenarios` lists them"
    )
    with pytest.raises(UsageError, match=r"^zzz: no such file or directory, nor a bund"):
        bundled.resolve("zzz")
    assert "did you mean" not in bundled.unknown_message("zzz")


def test_discover_defaults_to_the_bundled_set_and_drops_a_file_named_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(CHECKOUT)
    everything = sorted(SCENARIOS.glob("*.yaml"))  # path order, as a folder is searched
    assert discover([]) == everything
    found = discover(["scenarios", "scenarios/use-after-close.yaml", "use-after-close"])
    assert [p.resolve() for p in found] == everything


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("run use-after-clos --variant baseline", 2),
        ("check --scenario use-after-clos --factory baseline", 125),
        ("regress scenarios use-after-clos", 2),
        ("validate use-after-clos", 2),
        ("serve --scenario use-after-clos", 2),
        ("bisect --repo . --good a --bad b --scenario use-after-clos --factory x", 2),
    ],
)
def test_every_command_names_an_unknown_scenario_in_one_line(
    command: str,
    code: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "a.yaml").write_text(ONE_TURN, encoding="utf-8")
    argv = command.split()
    assert main(argv) == code
    out, err = capfd.readouterr()
    assert (out, err) == (
        "",
        f"harness {argv[0]}: error: use-after-clos: no such file or directory, nor a bundled "
        "scenario's name; did you mean use-after-close? `harness scenarios` lists them\n",
    )


def test_run_and_check_take_a_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["run", "use-after-close", "--variant", "keepalive-mutating", "--report-dir", "r"]
    assert main(argv) == 0  # the scenario expects this variant to be caught, and it is
    out = capsys.readouterr().out
    assert out.startswith("use-after-close / keepalive-mutating: completed, sync client, ")
    assert "verdict: FAIL (errors 3 > 0); expected fail" in out
    data = json.loads((tmp_path / "r" / "latest" / "results.json").read_text())
    assert data["scenarios"]["use-after-close"]["path"] == str(SCENARIOS / "use-after-close.yaml")
    check = ["check", "--scenario", "use-after-close", "--factory", "keepalive-fixed"]
    assert main(check) == 0


def test_regress_runs_a_file_named_twice_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "one.yaml").write_text(ONE_TURN, encoding="utf-8")
    argv = ["regress", str(folder), str(folder / "one.yaml"), "--report-dir", str(tmp_path / "r")]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("regress: 1 cell from 1 scenario, ")


# --- harness scenarios -----------------------------------------------------------------------


def test_scenarios_lists_names_first_sentences_and_roles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"{len(NAMES)} bundled scenarios (in {SCENARIOS}); pass a name wherever a file goes"
    )
    assert (
        "use-after-close: The gateway closes every per-request client after use "
        "(hermes-agent #11070).\n"
        "  pass: baseline, keepalive-fixed, baseline-async, keepalive-fixed-async\n"
        "  fail: keepalive-mutating, shared-http-client, keepalive-mutating-async, "
        "shared-http-client-async\n"
    ) in out
    assert "  observe: keepalive-mutating, shared-http-client, " in out  # abandoned-streams
    listed = [line.split(":")[0] for line in out.splitlines()[1:] if not line.startswith(" ")]
    assert listed == NAMES


def test_first_sentence() -> None:
    assert first_sentence("One.  Two. Three") == "One."
    assert first_sentence("No stop\n here") == "No stop here"
    assert first_sentence("Ends here.") == "Ends here."
    assert first_sentence("") == ""


# --- harness report on a run folder ------------------------------------------------------------


def _reports(tmp_path: Path, *, symlink: bool) -> Path:
    root = tmp_path / "reports"
    (root / GOLDEN_RUN).mkdir(parents=True)
    shutil.copy(GOLDEN, root / GOLDEN_RUN / "results.json")
    if symlink:
        (root / "latest").symlink_to(GOLDEN_RUN, target_is_directory=True)
    else:
        (root / "latest").write_text(GOLDEN_RUN + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("symlink", [True, False])
def test_report_takes_a_run_folder_latest_or_a_reports_root(
    tmp_path: Path, symlink: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _reports(tmp_path, symlink=symlink)
    out = tmp_path / "out"
    for given in (root / GOLDEN_RUN, root / "latest", root, root / GOLDEN_RUN / "results.json"):
        assert main(["report", str(given), "--out", str(out)]) == 0
        assert capsys.readouterr().out == f"{out / GOLDEN_RUN}\n"
    assert (out / GOLDEN_RUN / "report.html").is_file()


def test_report_on_a_folder_with_no_run_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"harness report: error: {tmp_path}: a folder with no results.json and no `latest` run;"
        " pass a run folder (reports/<run-id>), reports/latest or a results.json\n"
    )


# --- the pytest plugin ---------------------------------------------------------------------


def test_the_plugin_prefers_a_file_in_the_rootdir_to_a_bundled_name(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "use-after-close").write_text(ONE_TURN, encoding="utf-8")
    pytester.makepyfile(
        """
        def test_path_wins(harness_check):
            checked = harness_check("keepalive-fixed", "use-after-close")
            assert checked.result.calls == 1  # the one-turn file, not the bundled 4 turns

        def test_name(harness_check):
            assert harness_check("keepalive-fixed", "rate-limited").scenario.name == (
                "rate-limited"
            )
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)


# --- a real wheel and sdist ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="builds with uv (CI installs it)")
def test_the_wheel_and_sdist_hold_the_scenarios_and_the_wheel_runs_them(tmp_path: Path) -> None:
    # uv build: the sdist, then the wheel built from the sdist (as `python -m build` does).
    subprocess.run(
        ["uv", "build", "--quiet", "--out-dir", str(tmp_path / "dist"), str(CHECKOUT)],
        cwd=tmp_path,
        check=True,
        timeout=300,
    )
    sdist = next((tmp_path / "dist").glob("*.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {f"scenarios/{n}.yaml" for n in NAMES} <= members
    assert {"LICENSE", "setup.py", "pyproject.toml", "README.md"} <= members
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        packaged = sorted(n for n in archive.namelist() if n.startswith("harness/_scenarios/"))
        dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        archive.extractall(tmp_path / "site")  # a pure wheel: unpacking is installing
    assert packaged == sorted(f"harness/_scenarios/{n}.yaml" for n in NAMES)
    assert "\nLicense-Expression: MIT\n" in metadata
    site = tmp_path / "site"
    assert dist_info == f"lifecycle_harness-{version('lifecycle-harness')}.dist-info"
    assert (site / dist_info / "licenses" / "LICENSE").is_file()
    # From an empty folder, the unpacked wheel first on the path (dependencies from this venv).
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _child(WHERE, site, empty, site=True) == [
        str(site / "harness" / "__init__.py"),
        str(site / "harness" / "_scenarios"),
    ]
    cli = "import sys, harness.cli as c; sys.exit(c.main(sys.argv[1:]))"
    listed = _child(cli, site, empty, site=True, args=["scenarios"])
    assert listed[0].startswith(f"{len(NAMES)} bundled scenarios (in {site / 'harness'}")
    argv = ["run", "use-after-close", "--variant", "keepalive-mutating", "--report-dir", "r"]
    out = _child(cli, site, empty, site=True, args=argv)  # exit 0: caught, as expected
    assert "verdict: FAIL (errors 3 > 0); expected fail" in out
