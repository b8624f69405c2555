"""regress --factory: every scenario against one user factory (what the CI action runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import bundled
from harness.cli import main
from harness.commands._common import named_files
from harness.commands.regress import select_cells
from harness.report import load_summary
from harness.scenario import load_scenario

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

SCENARIO = """\
version: 1
client:
  kwargs: {max_retries: 0, timeout: 5}
  close_request_clients: true
session: {turns: 3}
expect: {errors: 0}
variants: {baseline: pass, keepalive-mutating: fail}
"""

MUTATING = """\
import openai


def create_openai_client(client_kwargs, *, shared):
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = openai.DefaultHttpxClient()
    return openai.OpenAI(**client_kwargs)
"""

ROOT = Path(__file__).resolve().parent.parent


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "closed.yaml").write_text(SCENARIO)
    return folder


def test_a_healthy_factory_passes_and_a_mutating_one_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path)
    fixed = "harness/variants/keepalive_fixed.py:create_openai_client"
    argv = ["regress", str(folder), "--factory", fixed, "--root", str(ROOT), "--quiet"]
    assert main([*argv, "--report-dir", str(tmp_path / "a")]) == 0
    summary = load_summary(Path(capsys.readouterr().out.strip()) / "results.json")
    assert [
        (e.scenario, e.variant, e.verdict.expected, e.as_expected) for e in summary.entries
    ] == [("closed", fixed, "pass", True)]
    (tmp_path / "gateway.py").write_text(MUTATING)
    argv = ["regress", str(folder), "--factory", "gateway.py:create_openai_client",
            "--root", str(tmp_path), "--quiet", "--report-dir", str(tmp_path / "b")]  # fmt: skip
    assert main(argv) == 1
    summary = load_summary(Path(capsys.readouterr().out.strip()) / "results.json")
    assert summary.entries[0].verdict.reasons == ("errors 2 > 0",)


def test_factory_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path)
    argv = ["regress", str(folder), "--report-dir", str(tmp_path / "r"), "--quiet"]
    assert main([*argv, "--factory", "nope.py:make", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness regress: error: nope.py:make: untestable: ")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()  # one line, no junk report
    # a spec no worker can load is refused before any cell runs: no opening, no BAD lines
    for spec in ("nope.py:make", "no-such-variant"):
        assert main([*argv[:-1], "--factory", spec, "--root", str(tmp_path)]) == 2
        printed = capsys.readouterr()
        assert printed.out == "" and printed.err.count("\n") == 1, printed
        assert printed.err.startswith(f"harness regress: error: {spec}: untestable: factory ")
    assert main([*argv, "--factory", "x.py:f", "--variant", "baseline"]) == 2
    assert capsys.readouterr().err == (
        "harness regress: error: --factory and --variant exclude each other; pass one of them\n"
    )


# A gateway's provider that rebuilds its closed client before a call, with the terminate hook:
# it keeps every call across a reload, and fails the calls a terminate closes in flight.
REBUILDING_PROVIDER = """\
from harness.variants._provider import make_sync, terminate


def create_openai_client(client_kwargs, *, shared):
    return make_sync(client_kwargs, shared=shared, policy="rebuild")


def terminate_openai_client(client, *, shared):
    terminate(client)
"""

# The user's own event scenario, without `variants:`: a reload after turn 1 of 2.
RELOAD = """\
version: 1
client:
  kwargs: {max_retries: 0, timeout: 5}
  calls_via: shared
session:
  turns: 2
  events: [{action: reload, after_turn: 1}]
expect: {errors: 0}
"""


def _regress(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[Any]]:
    """regress's exit code and its (scenario, variant, expected, errors) per cell."""
    code = main(["regress", *argv, "--quiet", "--jobs", "2"])
    summary = load_summary(Path(capsys.readouterr().out.strip()) / "results.json")
    cells = [(e.scenario, e.variant, e.verdict.expected, e.runs[0].errors) for e in summary.entries]
    return code, cells


def test_a_named_bundled_event_scenario_judges_the_factory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Named on the command line, terminate-in-flight judges a factory it does not list: the
    rebuilding provider's two in-flight calls fail it (in the default set it is observed)."""
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "factory.py").write_text(REBUILDING_PROVIDER)
    spec = "gateway/factory.py:create_openai_client"
    argv = ["terminate-in-flight", "--factory", spec, "--root", str(tmp_path)]
    code, cells = _regress(capsys, *argv, "--report-dir", str(tmp_path / "r"))
    assert (code, cells) == (1, [("terminate-in-flight", spec, "pass", 2)])
    default_set = [load_scenario(bundled.resolve(n)) for n in bundled.names()]
    roles = {
        c.scenario.name: c.expected
        for c in select_cells(default_set, (), spec, None, named=lambda s: False)
    }
    assert roles["terminate-in-flight"] == roles["reload-between-turns"] == "observe"
    assert {roles[n] for n in bundled.client_names()} == {"pass"}


def test_a_folder_names_none_of_its_scenarios_one_by_one(tmp_path: Path) -> None:
    """`nox -s regress -- --factory F` passes the bundled folder: its event scenarios observe
    a plain client factory, as with no PATH; a file or a bundled name given alone is named."""
    folder = bundled.directory()
    named = named_files([str(folder), "terminate-in-flight"])
    assert named == {(folder / "terminate-in-flight.yaml").resolve()}
    assert named_files([str(folder)]) == frozenset()
    own = tmp_path / "mine.yaml"
    own.write_text("version: 1\n")
    assert named_files([str(own)]) == {own.resolve()}


def test_regress_over_a_folder_observes_a_factory_its_event_scenario_does_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same scenario and factory that fail when the file is named (below) are observed
    when regress finds the file in a folder."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "mine.yaml").write_text(RELOAD)
    argv = [str(folder), "--factory", "provider-keeps-closed"]
    code, cells = _regress(capsys, *argv, "--report-dir", str(tmp_path / "r"))
    assert (code, cells) == (0, [("mine", "provider-keeps-closed", "observe", 1)])


def test_run_and_regress_judge_a_factory_alike_in_a_users_event_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A named event scenario without `variants:` expects a --factory to pass in regress as in
    run; a role in `variants:` wins in both."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(RELOAD)
    reports = ["--report-dir", str(tmp_path / "r")]
    code, cells = _regress(capsys, str(mine), "--factory", "provider-keeps-closed", *reports)
    assert (code, cells) == (1, [("mine", "provider-keeps-closed", "pass", 1)])
    assert main(["run", str(mine), "--factory", "provider-keeps-closed", *reports]) == 1
    assert "verdict: FAIL (errors 1 > 0); expected pass" in capsys.readouterr().out
    mine.write_text(RELOAD + "variants: {provider-keeps-closed: fail}\n")
    code, cells = _regress(capsys, str(mine), "--factory", "provider-keeps-closed", *reports)
    assert (code, cells) == (0, [("mine", "provider-keeps-closed", "fail", 1)])
    assert main(["run", str(mine), "--factory", "provider-keeps-closed", *reports]) == 0
    assert "expected fail" in capsys.readouterr().out


def test_a_users_event_scenario_observes_the_client_factory_variants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain regress of an event scenario without `variants:`: the client-factory variants
    (no terminate hook: the gateway keeps their closed client) are observed, not failed; the
    provider variants keep their roles."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(RELOAD)
    code, cells = _regress(capsys, str(mine), "--report-dir", str(tmp_path / "r"))
    assert code == 0
    roles = {variant: (expected, errors) for _, variant, expected, errors in cells}
    assert roles["baseline"] == roles["keepalive-fixed-async"] == ("observe", 1)
    assert roles["provider-atomic-swap"] == roles["provider-atomic-swap-async"] == ("pass", 0)
    judged = {v for v, (expected, _) in roles.items() if expected != "observe"}
    assert judged == {"provider-atomic-swap", "provider-atomic-swap-async"}
