"""The worker process: its JSON lines, exit codes and failure records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.launch import launcher_for
from harness.mockserver import MockServer
from harness.scenario import load_scenario
from harness.settle import SettleResponder
from harness.worker import Job
from harness.zygote import Zygote

CHECKOUT = Path(__file__).resolve().parent.parent

SCENARIO = """version: 1
server: {keepalive: {idle_timeout_ms: 30}}
client: {kwargs: {timeout: 10}, close_request_clients: false}
session: {turns: 3, idle_between_turns_ms: 150, gc: GC}
"""
TIMEOUT_S = 120  # a bound against a hang, not a speed check


def _work(
    zygote: Zygote | None,
    tmp_path: Path,
    factory: str,
    *,
    gc: str = "off",
    scenario: str = SCENARIO,
) -> tuple[int, list[dict[str, Any]], str]:
    """Run one worker on ``factory`` (forked from ``zygote``, as it runs what ``python -m
    harness.worker JOB`` runs; the entry point itself: test_launch.py and the tests below
    that run it); returns its exit code, its output lines and its stderr. Its samples settle
    with the server, as a run's do (harness.settle): without that, a sample taken before the
    server's thread got to an idle close it owed missed a CLOSE_WAIT on a loaded machine."""
    path = tmp_path / "s.yaml"
    path.write_text(scenario.replace("GC", gc))
    job_path, stderr = tmp_path / "job.json", tmp_path / "stderr.txt"
    with MockServer(load_scenario(path).server) as server:
        responder = SettleResponder(server.settle)
        try:
            job = Job(
                scenario=load_scenario(path).to_dict(),
                factory=factory,
                root=str(tmp_path),
                base_url=server.base_url,
                port=server.port,
                out=str(tmp_path / "out.jsonl"),
                settle_fd=responder.child_fd,
            )
            job_path.write_text(json.dumps(job.to_dict()))
            launcher = launcher_for(sys.executable, CHECKOUT, zygote)
            with launcher.launch(job_path, stderr, (responder.child_fd,)) as worker:
                responder.started_child()
                code = worker.wait(TIMEOUT_S)
        finally:
            responder.close()
    assert code is not None, "the worker outlived its bound"
    out = tmp_path / "out.jsonl"
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, lines, stderr.read_text()


@pytest.mark.sdk
def test_a_session_writes_environment_samples_calls_and_done(
    tmp_path: Path, forks: Zygote | None
) -> None:
    code, lines, stderr = _work(forks, tmp_path, "baseline")
    assert (code, stderr) == (0, "")
    kinds = [
        (line["type"], line.get("label") or line.get("turn") or line.get("kind")) for line in lines
    ]
    assert kinds == [
        ("environment", None),
        ("sample", "start"),
        ("client", "sync"),
        ("call", 1),
        ("sample", "turn 1"),
        ("call", 2),
        ("sample", "turn 2"),
        ("call", 3),
        ("sample", "turn 3"),
        ("sample", "live after gc"),
        ("sample", "after close"),
        ("sample", "after gc"),
        ("done", None),
    ]
    env = lines[0]
    assert set(env) == {
        "type",
        "python",
        "seed",
        "openai",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "h11",
        "os",
        "platform",
    }
    samples = {line["label"]: line for line in lines if line["type"] == "sample"}
    assert [samples[f"turn {n}"]["turn"] for n in (1, 2, 3)] == [1, 2, 3]
    # Unclosed baseline clients with GC off: one CLOSE_WAIT more per turn until collected.
    assert [samples[f"turn {n}"]["close_wait"] for n in (1, 2, 3)] == [1, 2, 3]
    # Leaked until GC: the collection with the gateway still up frees them.
    post = ("live after gc", "after close", "after gc")
    assert [samples[label]["close_wait"] for label in post] == [0, 0, 0]
    calls = [line for line in lines if line["type"] == "call"]
    assert [
        (c["session"], c["round"], c["ok"], c["error_type"], c["sdk_retries"]) for c in calls
    ] == [(0, 1, True, None, 0)] * 3


def test_gc_auto_leaves_collection_on(tmp_path: Path, forks: Zygote | None) -> None:
    code, lines, _ = _work(forks, tmp_path, "baseline", gc="auto")
    assert code == 0
    assert lines[-1] == {"type": "done"}
    assert [line["close_wait"] for line in lines if line.get("label") == "after gc"] == [0]


def test_an_unresolvable_factory_is_untestable(tmp_path: Path, forks: Zygote | None) -> None:
    code, lines, _ = _work(forks, tmp_path, "gw_missing_module:make")
    assert code == 3
    assert [line["type"] for line in lines] == ["environment", "untestable"]
    assert lines[1]["message"].startswith("factory 'gw_missing_module:make': cannot import")


def test_a_factory_that_raises_on_the_shared_client_is_untestable(
    tmp_path: Path, forks: Zygote | None
) -> None:
    (tmp_path / "bad.py").write_text(
        "def make(client_kwargs, *, shared):\n    raise LookupError('no key')\n"
    )
    code, lines, _ = _work(forks, tmp_path, "bad.py:make")
    assert code == 3
    assert [line["type"] for line in lines] == ["environment", "sample", "untestable"]
    assert lines[2]["message"] == (
        "factory 'bad.py:make' raised building the shared client: LookupError: no key"
    )


def test_a_worker_failure_is_recorded_as_error(tmp_path: Path, forks: Zygote | None) -> None:
    (tmp_path / "half.py").write_text(
        "import openai\n"
        "def make(client_kwargs, *, shared):\n"
        "    if shared:\n"
        "        return object()  # no close(): the shutdown fails\n"
        "    return openai.OpenAI(**client_kwargs)\n"
    )
    code, lines, stderr = _work(forks, tmp_path, "half.py:make")
    assert code == 1
    assert lines[-1] == {
        "type": "error",
        "message": "AttributeError: 'object' object has no attribute 'close'",
    }
    assert sum(1 for line in lines if line["type"] == "call") == 3
    assert stderr.splitlines()[-1] == "AttributeError: 'object' object has no attribute 'close'"


@pytest.mark.parametrize("content", ["{", '{"scenario": "x"}', "[]"])
def test_an_unusable_job_file_exits_2_with_one_line(tmp_path: Path, content: str) -> None:
    job = tmp_path / "job.json"
    job.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.worker", str(job)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(f"harness worker: error: job file {str(job)!r} is unusable: ")


def test_usage_without_a_job_file() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.worker"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (2, "usage: python -m harness.worker JOB.json\n")


def test_environment_names_the_target_commit(tmp_path: Path) -> None:
    from harness.environment import target_commit

    assert target_commit(tmp_path) is None
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True
    )
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert target_commit(tmp_path) == head
    assert len(head) == 40


def test_the_fingerprint_is_handed_out_as_a_copy() -> None:
    # the worker adds target_commit to its copy; no later reader may see it
    from harness.environment import fingerprint

    first = fingerprint()
    first["target_commit"] = "0" * 40
    assert "target_commit" not in fingerprint()
    assert fingerprint() == {k: v for k, v in first.items() if k != "target_commit"}


def test_an_async_factory_runs_the_async_gateway(tmp_path: Path, forks: Zygote | None) -> None:
    code, lines, _ = _work(forks, tmp_path, "keepalive-fixed-async")
    assert code == 0
    assert [line for line in lines if line["type"] == "client"] == [
        {"type": "client", "kind": "async"}
    ]
    calls = [line for line in lines if line["type"] == "call"]
    assert [(c["turn"], c["ok"]) for c in calls] == [(1, True), (2, True), (3, True)]
    assert [line["close_wait"] for line in lines if line.get("label") == "after gc"] == [0]


def test_a_client_of_the_wrong_kind_is_untestable(tmp_path: Path, forks: Zygote | None) -> None:
    scenario = SCENARIO.replace("client: {", "client: {kind: async, ")
    code, lines, _ = _work(forks, tmp_path, "baseline", scenario=scenario)
    assert code == 3
    assert lines[-1] == {
        "type": "untestable",
        "message": "scenario 's' requires client.kind async; factory 'baseline' "
        "returned OpenAI (sync)",
    }
