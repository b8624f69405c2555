"""validate, run, check and regress end to end: real workers, real sockets, the real SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from _wait import until

from harness.cli import main
from harness.commands.check import decide
from harness.result import ServerStats, summarize
from harness.scenario import Expectations
from harness.verdict import RegressEntry, judge

pytestmark = pytest.mark.usefixtures("forked_runs")  # in-process runs fork (conftest.py)

USE_AFTER_CLOSE = """\
version: 1
description: request clients closed after use
client:
  kwargs: {max_retries: 0, timeout: 5}
  close_request_clients: true
session:
  turns: 3
expect:
  errors: 0
variants:
  baseline: pass
  keepalive-mutating: fail
"""

MUTATING_FACTORY = """\
import openai


def create_openai_client(client_kwargs, *, shared):
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = openai.DefaultHttpxClient()
    return openai.OpenAI(**client_kwargs)
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "use-after-close.yaml"
    path.write_text(USE_AFTER_CLOSE)
    return path


def test_validate_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(USE_AFTER_CLOSE)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsession:\n  turns: -3\n")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok (good, 2 variants)\n"
    assert main(["validate", str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert f"{good}: ok (good, 2 variants)" in out
    assert err == (
        f"harness validate: error: {bad}:3: key 'session.turns': -3 is out of range; "
        "allowed 1..100000\n"
    )
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such file or directory" in capsys.readouterr().err


def test_run_prints_turn_table_and_verdict(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "r.json"
    code = main(
        [
            "run",
            str(scenario),
            "--variant",
            "keepalive-mutating",
            "--json",
            str(out_json),
            "--report-dir",
            str(tmp_path / "reports"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0  # the scenario expects keepalive-mutating to be caught, and it is
    assert (
        "turn  calls  errors  close_wait  established  fds  first error\n   1      1       0" in out
    )
    assert "verdict: FAIL (errors 2 > 0); expected fail" in out
    data = json.loads(out_json.read_text())
    assert data["command"] == "run"
    (entry,) = data["entries"]
    assert entry["runs"][0]["errors"] == 2
    assert entry["runs"][0]["calls"] == 3
    assert (tmp_path / "reports" / "latest" / "results.json").is_file()


def test_run_unknown_variant_is_usage_error(
    scenario: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(scenario), "--variant", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness run: error: unknown variant 'nope'; use one of: baseline")
    assert err.count("\n") == 1


@pytest.mark.sdk
@pytest.mark.slow
def test_check_exit_codes(scenario: Path, tmp_path: Path) -> None:
    (tmp_path / "mutating.py").write_text(MUTATING_FACTORY)
    (tmp_path / "broken.py").write_text("def create_openai_client(:\n")
    base = ["check", "--scenario", str(scenario), "--root", str(tmp_path)]
    assert main([*base, "--factory", "baseline"]) == 0
    assert main([*base, "--factory", "mutating.py:create_openai_client"]) == 1
    assert main([*base, "--factory", "broken.py:create_openai_client"]) == 125
    assert main([*base, "--factory", "no_such_module:create_openai_client"]) == 125
    assert main([*base, "--factory", "mutating.py:no_such_function"]) == 125


def test_check_repeat_writes_every_run(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    code = main(
        [
            "check",
            "--scenario",
            str(scenario),
            "--factory",
            "keepalive-mutating",
            "--repeat",
            "2",
            "--json",
            str(out),
        ]
    )
    assert code == 1
    data = json.loads(out.read_text())
    (entry,) = data["entries"]
    assert [r["errors"] for r in entry["runs"]] == [2, 2]
    assert [v["healthy"] for v in entry["verdicts"]] == [False, False]


def test_check_bad_input_skips_rather_than_marking_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # git bisect run reads 2 as "bad": check's bad input is 125 (skip), with one line
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nexpect: {erors: 0}\n")
    assert main(["check", "--scenario", str(bad), "--factory", "baseline"]) == 125
    assert f"{bad}:2: key 'expect.erors': unknown key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["check", "--factory", "baseline"])
    assert info.value.code == 125
    assert "the following arguments are required: --scenario" in capsys.readouterr().err


def _entry(*healthy_and_status: tuple[bool, str]) -> RegressEntry:
    runs, verdicts = [], []
    for healthy, status in healthy_and_status:
        run = summarize(
            scenario="s",
            variant="v",
            status=status,  # type: ignore[arg-type]
            records=[],
            samples=[],
            server=ServerStats(),
            wall_s=0.1,
            environment={},
        )
        expect = Expectations(errors=0) if healthy else Expectations(errors=-1)
        runs.append(run)
        verdicts.append(judge(run, expect, "pass"))
    return RegressEntry("s", "v", "", tuple(runs), tuple(verdicts))


LOCAL_STUB = """\
import httpx
import openai

REPLY = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "local"}}],
}


def make(client_kwargs, *, shared):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=REPLY))
    return openai.OpenAI(**client_kwargs, http_client=httpx.Client(transport=transport))
"""


def test_a_factory_that_never_reaches_the_server_is_untestable_for_check_and_regress(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stub.py").write_text(LOCAL_STUB)
    args = ["--scenario", str(scenario), "--factory", "stub.py:make", "--root", str(tmp_path)]
    assert main(["check", *args]) == 125
    out = capsys.readouterr().out
    assert (
        "  untestable: errors 0, retries 0 (SDK 0), CLOSE_WAIT growth 0, live after gc 0: "
        "fail (run untestable: the "
        "client never reached the mock server: 0 server calls against 3 client calls; the "
        "factory must build its client from client_kwargs (base_url))\n"
    ) in out
    assert out.endswith("check: untestable (1 run)\n")
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "s.yaml").write_text("version: 1\nvariants: {stub.py:make: pass}\n")
    reports = tmp_path / "reports"
    code = main(["regress", str(folder), "--root", str(tmp_path), "--report-dir", str(reports)])
    assert code == 1
    entry = json.loads((reports / "latest" / "results.json").read_text())["entries"][0]
    run = entry["runs"][0]
    assert (run["status"], run["calls"], run["errors"], run["server"]["connections"]) == (
        "untestable",
        10,  # the default turns
        0,
        0,
    )
    assert entry["verdicts"][0]["healthy"] is False


REQUEST_CLIENT_RAISES = """\
import openai


def make(client_kwargs, *, shared):
    if not shared:
        raise ValueError("request client needs a proxy")
    return openai.OpenAI(**client_kwargs)
"""


def test_a_factory_that_raises_building_request_clients_is_a_regression(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The code under test failing as it would in production: not "untestable", although no
    # call reached the mock server.
    (tmp_path / "raises.py").write_text(REQUEST_CLIENT_RAISES)
    out_json = tmp_path / "check.json"
    args = ["--scenario", str(scenario), "--factory", "raises.py:make", "--root", str(tmp_path)]
    assert main(["check", *args, "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    assert out == (
        "  completed: errors 3, retries 0 (SDK 0), CLOSE_WAIT growth 0, live after gc 0: fail "
        "(the factory raised building 3 of 3 request clients: ValueError: request client "
        "needs a proxy; errors 3 > 0)\n"
        "check: regression (1 run)\n"
    )
    run = json.loads(out_json.read_text())["entries"][0]["runs"][0]
    assert (run["status"], run["server"]["total_calls"], run["errors_by_type"]) == (
        "completed",
        0,
        {"ValueError": 3},
    )
    assert [r["factory_raised"] for r in run["records"]] == [True, True, True]


def test_decide_policies() -> None:
    one_of_three = _entry((True, "completed"), (False, "completed"), (True, "completed"))
    assert decide(one_of_three, "any") == 1
    assert decide(one_of_three, "majority") == 0
    two_of_three = _entry((False, "completed"), (False, "completed"), (True, "completed"))
    assert decide(two_of_three, "majority") == 1
    untestable = _entry((False, "untestable"), (False, "untestable"))
    assert decide(untestable, "any") == 125
    # untestable runs are left out of the count: one healthy testable run decides
    mixed = _entry((False, "untestable"), (True, "completed"))
    assert decide(mixed, "majority") == 0


def _write_matrix(tmp_path: Path, variants: str) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    text = USE_AFTER_CLOSE.split("variants:")[0] + "variants:\n" + textwrap.indent(variants, "  ")
    (folder / "uac.yaml").write_text(text)
    (tmp_path / "mutating.py").write_text(MUTATING_FACTORY)
    return folder


def test_regress_all_as_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write_matrix(tmp_path, "baseline: pass\nkeepalive-mutating: fail\n")
    reports = tmp_path / "reports"
    code = main(["regress", str(folder), "--jobs", "2", "--report-dir", str(reports)])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 cells, 2 as expected, 0 not" in out
    assert "Not as expected" not in out
    run_dir = next(p for p in reports.iterdir() if p.name.endswith("-regress"))
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["junit.xml", "report.html", "results.json", "summary.md"]
    data = json.loads((run_dir / "results.json").read_text())
    cells = {(e["scenario"], e["variant"]): e["runs"][0]["errors"] for e in data["entries"]}
    assert cells == {("uac", "baseline"): 0, ("uac", "keepalive-mutating"): 2}


def test_regress_fails_when_a_fixed_variant_is_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a user factory that carries the regression, declared as a fixed build
    folder = _write_matrix(tmp_path, "baseline: pass\nmutating.py:create_openai_client: pass\n")
    code = main(
        ["regress", str(folder), "--root", str(tmp_path), "--report-dir", str(tmp_path / "r")]
    )
    out = capsys.readouterr().out
    assert code == 1
    recap = (
        "Not as expected (1):\n"
        "  uac / mutating.py:create_openai_client: expected pass, got fail: errors 2 > 0\n"
        "\n2 cells, 1 as expected, 1 not, in "
    )
    assert recap in out


def test_regress_fails_when_a_buggy_variant_is_no_longer_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _write_matrix(tmp_path, "keepalive-fixed: fail\n")
    assert main(["regress", str(folder), "--report-dir", str(tmp_path / "r")]) == 1
    assert (
        "  uac / keepalive-fixed: expected fail, got pass: healthy, but expected fail: "
        "no expect: threshold was exceeded\n"
    ) in capsys.readouterr().out


def test_regress_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regress", str(tmp_path)]) == 2
    assert "no scenario files (*.yaml)" in capsys.readouterr().err
    (tmp_path / "a.yaml").write_text("version: 1\nname: same\n")
    (tmp_path / "b.yaml").write_text("version: 1\nname: same\n")
    assert main(["regress", str(tmp_path)]) == 2
    assert "scenario name 'same' is already used" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("signals", "code"),
    [
        ((signal.SIGINT,), 130),
        ((signal.SIGTERM,), 143),
        # a second and third signal right behind the first, as an impatient Ctrl-C Ctrl-C
        ((signal.SIGINT, signal.SIGINT, signal.SIGTERM), 130),
    ],
)
def test_regress_interrupted_writes_what_finished(
    tmp_path: Path, signals: tuple[int, ...], code: int
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "a-quick.yaml").write_text(
        USE_AFTER_CLOSE.replace("  keepalive-mutating: fail\n", "")
    )
    slow = "version: 1\nsession: {turns: 3, idle_between_turns_ms: 60000}\n"
    slow += "variants: {baseline: pass}\n"
    (folder / "b-slow.yaml").write_text(slow)
    reports = tmp_path / "reports"
    temp = tmp_path / "temp"  # the runs' temporary folders go here: all must be removed
    temp.mkdir()
    # regress installs its own SIGINT/SIGTERM handlers, whatever disposition it inherits (a
    # background job ignores SIGINT), so the signals below reach it either way.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "regress",
            str(folder),
            "--jobs",
            "2",
            "--report-dir",
            str(reports),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "a-quick / baseline" in line:
                break
        # The slow scenario (started first: longest first) is still running its worker.
        workers = until(lambda: _workers(proc.pid, temp), what="a worker", timeout_s=60)
        # The slow run's folder (and the zygote's, when its path is short enough for TMPDIR).
        assert [p.name[:12] for p in temp.iterdir()].count("harness-run-") == 1
        for signum in signals:
            os.kill(proc.pid, signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # also closes the pipes, which a failure must not leak
    assert proc.returncode == code
    assert "INTERRUPTED: partial results" in out
    data = json.loads((reports / "latest" / "results.json").read_text())
    assert data["interrupted"] is True
    assert [(e["scenario"], e["variant"]) for e in data["entries"]] == [("a-quick", "baseline")]
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert list(temp.iterdir()) == []


def _workers(pid: int, temp: Path) -> list[psutil.Process]:
    """Every process below ``pid`` once a run's worker has started recording in ``temp``
    (a fresh worker and one forked from the zygote alike)."""
    if not any(path.stat().st_size for path in temp.glob("harness-run-*/out.jsonl")):
        return []
    return psutil.Process(pid).children(recursive=True)


def test_run_unimportable_factory_is_usage_error(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(scenario),
            "--factory",
            "no_such_module:create",
            "--root",
            str(tmp_path),
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    printed = capsys.readouterr()
    assert printed.err.startswith("harness run: error: no_such_module:create: untestable: ")
    assert printed.err.count("\n") == 1
    # the error once, nothing on stdout, and no report folder for `latest` to point to
    assert printed.out == "" and not (tmp_path / "r").exists()


def test_bad_output_paths_are_refused_before_running(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "out.json"
    assert main(["run", str(scenario), "--variant", "baseline", "--json", str(missing)]) == 2
    assert "not a file in an existing folder" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["regress", str(scenario), "--report-dir", str(a_file)]) == 2
    assert "is a file; pick a folder" in capsys.readouterr().err
    base = ["check", "--scenario", str(scenario), "--factory", "baseline"]
    assert main([*base, "--json", str(missing)]) == 125


def test_regress_unknown_variant_filter_is_usage_error(
    scenario: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["regress", str(scenario), "--variant", "keepalive-fixd"]) == 2
    err = capsys.readouterr().err
    assert "--variant 'keepalive-fixd' runs in none of these scenarios; use one of: " in err


def test_serve_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "99999"])
    assert info.value.code == 2
    assert "'99999' is not a TCP port; use 0..65535" in capsys.readouterr().err


def test_validate_a_folder_reports_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-good.yaml").write_text(USE_AFTER_CLOSE)
    (tmp_path / "b-deep.yaml").write_text("version: 1\nsession: " + "[" * 3000 + "]" * 3000)
    (tmp_path / "c-tag.yaml").write_text("version: 1\nname: !Sub x\n")
    (tmp_path / "d-bool.yaml").write_text("version: yes\n")
    (tmp_path / "e-long.yaml").write_text(
        "version: 1\nsession: {turns: 9000, idle_between_turns_ms: 1000}\n"
    )
    assert main(["validate", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'a-good.yaml'}: ok (a-good, 2 variants)\n"
    assert [line.split(": ", 3)[2] for line in err.splitlines()] == [
        f"{tmp_path / 'b-deep.yaml'}:2",
        f"{tmp_path / 'c-tag.yaml'}:2",
        f"{tmp_path / 'd-bool.yaml'}:1",
        f"{tmp_path / 'e-long.yaml'}:2",
    ]
    assert "plans to run 9,000 s, over the limit of 600 s" in err.splitlines()[-1]
    assert main(["validate", "--max-duration", "9000", str(tmp_path / "e-long.yaml")]) == 0


def test_validate_reports_every_missing_path_and_still_checks_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(USE_AFTER_CLOSE)
    argv = ["validate", "nope-1.yaml", str(good), "nope-2.yaml", "use-after-close"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{good}: ok (good, 2 variants)"
    assert out.splitlines()[1].endswith("use-after-close.yaml: ok (use-after-close, 8 variants)")
    assert [line.split(": ")[2] for line in err.splitlines()] == ["nope-1.yaml", "nope-2.yaml"]


def test_the_duration_limit_applies_to_run_regress_and_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = tmp_path / "long.yaml"
    long.write_text("version: 1\nsession: {turns: 700, idle_between_turns_ms: 1000}\n")
    expected = f"{long}:2: key 'session': plans to run 700 s, over the limit of 600 s"
    assert main(["run", str(long), "--variant", "baseline"]) == 2
    assert main(["regress", str(long), "--report-dir", str(tmp_path / "r")]) == 2
    assert main(["check", "--scenario", str(long), "--factory", "baseline"]) == 125
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(expected in line for line in err)
    with pytest.raises(SystemExit) as info:
        main(["check", "--scenario", str(long), "--factory", "baseline", "--max-duration", "0"])
    assert info.value.code == 125
    assert "'0' is not a number of seconds > 0" in capsys.readouterr().err
