"""regress --factory: every scenario against one user factory (what the CI action runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.report import load_summary

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
