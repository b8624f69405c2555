"""Run one (scenario, variant) pair: mock server here, gateway in a worker process.

The mock server runs in this process and keeps the server-side counts; the worker
(:mod:`harness.worker`) runs the gateway in its own process group, so its sockets are its
own, and a hung or crashing factory cannot take the harness down. A watchdog derived from
the scenario (:func:`watchdog_for`) kills the worker on expiry. :mod:`harness.processes`
starts it: the worker and everything it started (daemons in their own session too) are
killed on every way out, KeyboardInterrupt included, and die with this process even when it
is SIGKILLed, so no worker outlives its run. A worker forked from a :mod:`harness.zygote`
(regress does that) keeps each of these guarantees.

Status: "completed" when the worker finished its session; "hung" when the watchdog fired;
"untestable" when the factory could not be resolved, raised building the shared client, the
worker refused traffic off loopback (its ``refused`` line is the detail), the worker died
before its first call, or the client's calls never reached the mock server (0 server-side
requests against > 0 client calls that had a client: a stub that answers locally tests
nothing; calls whose request client the factory failed to build do not count, they are the
code under test failing and the verdict judges them);
"crashed" when it died after its first call. :func:`classify` holds these rules, a pure
function of the worker's lines (:mod:`harness.messages`), its exit code, the watchdog and the
server's counts. A :class:`harness.launch.Launcher` starts the worker: a fresh interpreter,
or the zygote when it serves the run. ``detail`` says why, in at most
:data:`DETAIL_MAX_CHARS` characters (a longer one says how much was cut); only the last
:data:`STDERR_TAIL_BYTES` of the worker's stderr are read.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from harness.errors import RunCancelled, WorkerError
from harness.launch import Launcher, launcher_for
from harness.messages import (
    EXIT_OK,
    Call,
    Client,
    Done,
    Environment,
    Failed,
    Job,
    Refused,
    Sample,
    Untestable,
    WorkerLine,
    parse_line,
)
from harness.mockserver import MockServer
from harness.processes import Handle
from harness.redact import scrub
from harness.result import RunResult, RunStatus, ServerStats, summarize
from harness.schema import HttpError, Scenario, Stall
from harness.settle import SettleResponder

if TYPE_CHECKING:
    from harness.zygote import Zygote

__all__ = ["classify", "run_one", "watchdog_for"]

STARTUP_S: Final = 15.0  # interpreter + openai import: ~0.6 s idle, far more on a busy box
LOAD_FACTOR: Final = 1.5  # headroom for a loaded machine
SDK_TIMEOUT_S: Final = 600.0  # openai's default read timeout
SDK_MAX_RETRIES: Final = 2
SDK_MAX_BACKOFF_S: Final = 8.0  # openai's MAX_RETRY_DELAY
CANCEL_POLL_S: Final = 0.1  # how often a waiting run looks at its cancel event
STDERR_TAIL_BYTES: Final = 64 * 1024  # of the worker's stderr, read for its last line
DETAIL_MAX_CHARS: Final = 2000  # of RunResult.detail: a factory may print megabytes


def watchdog_for(scenario: Scenario) -> float:
    """Seconds a worker may take before it counts as hung: a generous upper bound.

    Per call: every attempt (``max_retries`` + 1) may wait the whole read ``timeout`` plus
    everything the server spends on purpose (latency, stalls, chunk delays), and every retry
    may back off for the SDK's longest delay or the largest ``retry_after_s``. Turns add
    their idle gaps; the whole is scaled by :data:`LOAD_FACTOR` and gets :data:`STARTUP_S`.
    Set ``client.kwargs.timeout`` in scenarios: the SDK's 600 s default makes this bound long.
    """
    kwargs = scenario.client.kwargs
    timeout = float(kwargs.get("timeout", SDK_TIMEOUT_S))
    attempts = int(kwargs.get("max_retries", SDK_MAX_RETRIES)) + 1
    server = scenario.server
    chunks = server.reply.chunks
    stall_s = sum(
        f.ms / 1000 * (1 if f.at == "first_byte" else chunks + 1)
        for f in server.faults
        if isinstance(f, Stall)
    )
    server_s = server.latency_ms / 1000 + stall_s + chunks * server.reply.chunk_delay_ms / 1000
    retry_after = max(
        (f.retry_after_s or 0.0 for f in server.faults if isinstance(f, HttpError)), default=0.0
    )
    backoff_s = max(SDK_MAX_BACKOFF_S, retry_after)
    per_call = attempts * (timeout + server_s) + (attempts - 1) * backoff_s
    session = scenario.session
    # Sessions beyond the SDK's pool limit queue for connections.
    waves = math.ceil(session.concurrency / 100)
    per_turn = session.calls_per_turn * per_call * waves + session.idle_between_turns_ms / 1000
    timeline_s = session.timeline_idle_ms() / 1000  # 0 without a timeline
    return STARTUP_S + LOAD_FACTOR * session.turns * per_turn + LOAD_FACTOR * timeline_s


def run_one(
    scenario: Scenario,
    variant: str,
    *,
    root: Path | None = None,
    watchdog_s: float | None = None,
    python: str = sys.executable,
    cancel: threading.Event | None = None,
    zygote: Zygote | None = None,
    attribute: bool = False,
) -> RunResult:
    """Run ``scenario`` against ``variant`` (a bundled name or factory spec) and score it.

    ``root`` (default: the current directory) is the checkout factory specs resolve in;
    ``watchdog_s`` (default: :func:`watchdog_for`) bounds the worker's run; ``python`` is
    the interpreter the worker runs on (it must be able to import ``harness`` and openai).
    Setting ``cancel`` kills the worker's process group and raises :class:`RunCancelled`.
    With ``zygote``, the worker is forked from it when it serves this ``python``, ``root``
    and environment (:mod:`harness.zygote`), else started as a fresh interpreter.
    ``attribute`` turns leak attribution on (:mod:`harness.attribution`).
    """
    root = Path.cwd() if root is None else root
    limit = watchdog_for(scenario) if watchdog_s is None else watchdog_s
    with (
        MockServer(scenario.server) as server,
        _fallback_server(scenario) as fallback_url,
        tempfile.TemporaryDirectory(prefix="harness-run-") as tmp,
    ):
        responder = SettleResponder(server.settle)
        job = Job(
            scenario=scenario.to_dict(),  # the validated value, not the file: no re-parse
            factory=variant,
            root=str(root.resolve()),
            base_url=server.base_url,
            port=server.port,
            out=str(Path(tmp, "out.jsonl")),
            settle_fd=responder.child_fd,
            fallback_base_url=fallback_url,
            attribute=attribute,
        )
        job_path = Path(tmp, "job.json")
        job.write(job_path)
        stderr_path = Path(tmp, "stderr.txt")
        stderr_path.touch()  # read below even when no worker got to open it
        started = time.monotonic()
        try:
            launcher = launcher_for(python, root, zygote)
            returncode, hung = _run_worker(
                launcher, job_path, stderr_path, limit, cancel, responder
            )
        finally:
            responder.close()
        wall_s = time.monotonic() - started
        lines = _read_lines(Path(job.out))
        stderr = _tail(stderr_path)
        stats = server.stats()
    status, detail = classify(lines, returncode, hung, stats, limit=limit, stderr=stderr)
    environment = next((line.values for line in lines if isinstance(line, Environment)), {})
    return summarize(
        scenario=scenario.name,
        variant=variant,
        status=status,
        records=[line.record for line in lines if isinstance(line, Call)],
        samples=[line.sample for line in lines if isinstance(line, Sample)],
        server=stats,
        wall_s=wall_s,
        environment=environment,
        detail=_bounded(scrub(detail)),  # the worker's stderr is the code under test's
        client_kind=next((line.kind for line in lines if isinstance(line, Client)), ""),
    )


@contextmanager
def _fallback_server(scenario: Scenario) -> Iterator[str]:
    """A second mock server (same spec) when a `fallback` event needs one: its URL, else ""."""
    if not any(event.action == "fallback" for event in scenario.session.events):
        yield ""
        return
    with MockServer(scenario.server) as server:  # its counts are not part of the result
        yield server.base_url


def _run_worker(
    launcher: Launcher,
    job_path: Path,
    stderr_path: Path,
    limit: float,
    cancel: threading.Event | None,
    responder: SettleResponder,
) -> tuple[int, bool]:
    """Run the worker to its end or the watchdog; return (exit code, hung)."""
    # Every way out (KeyboardInterrupt too) kills the worker and all it started.
    with launcher.launch(job_path, stderr_path, (responder.child_fd,)) as child:
        responder.started_child()
        deadline = time.monotonic() + limit
        while True:
            if cancel is not None and cancel.is_set():
                raise RunCancelled("the run was cancelled")
            code = child.wait(timeout=min(CANCEL_POLL_S, limit))
            if code is not None:
                return code, False
            if time.monotonic() >= deadline:
                child.kill()
                return _exit_code(child), True


def _exit_code(child: Handle) -> int:
    code = child.wait()
    assert code is not None  # wait() without a timeout returns the code
    return code


def _read_lines(path: Path) -> list[WorkerLine]:
    """Every line the worker wrote; a last line cut short by a kill is dropped."""
    try:
        texts = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []  # the worker died before it opened its output
    lines: list[WorkerLine] = []
    for number, text in enumerate(texts, 1):
        try:
            lines.append(parse_line(text))
        except ValueError as exc:
            if number == len(texts):
                break  # a line cut short by a kill; everything before it stands
            raise WorkerError(f"worker output {str(path)!r}:{number}: not JSON: {exc}") from exc
    return lines


def _tail(path: Path) -> str:
    """The last :data:`STDERR_TAIL_BYTES` of the worker's stderr; what was cut is said."""
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - STDERR_TAIL_BYTES))
        text = stream.read().decode("utf-8", errors="replace")
    if size <= STDERR_TAIL_BYTES:
        return text
    return f"[worker stderr: first {size - STDERR_TAIL_BYTES} bytes cut]" + text


def _bounded(detail: str) -> str:
    """``detail`` cut to :data:`DETAIL_MAX_CHARS`, saying how many characters were cut."""
    if len(detail) <= DETAIL_MAX_CHARS:
        return detail
    cut = len(detail) - DETAIL_MAX_CHARS
    return f"{detail[:DETAIL_MAX_CHARS]}... [{cut} more characters cut]"


def classify(
    lines: Sequence[WorkerLine],
    exit: int,
    hung: bool,
    stats: ServerStats,
    *,
    limit: float = 0.0,
    stderr: str = "",
) -> tuple[RunStatus, str]:
    """A run's status and why, from what its worker wrote (``lines``), its ``exit`` code,
    whether the watchdog (``limit`` seconds) killed it, the server's ``stats`` and the last
    of the worker's ``stderr``. Pure: the module docstring's rules, testable without a
    process."""
    status, detail = _status(lines, exit, hung, limit, stderr)
    # a call whose factory raised building its client is the code under test failing (judged
    # as such by the verdict), not a client that answers without the server
    tried = sum(1 for line in lines if isinstance(line, Call) and not line.record.factory_raised)
    return _unreached(status, detail, tried, stats)


def _unreached(
    status: RunStatus, detail: str, client_calls: int, stats: ServerStats
) -> tuple[RunStatus, str]:
    """A run whose client calls never reached the mock server tested nothing: untestable."""
    server_calls = sum(stats.requests_per_connection)
    if status not in ("completed", "crashed") or client_calls == 0 or server_calls > 0:
        return status, detail
    why = (
        f"the client never reached the mock server: 0 server calls against {client_calls} "
        "client calls; the factory must build its client from client_kwargs (base_url)"
    )
    return "untestable", why + (f"; {detail}" if detail else "")


def _status(
    lines: Sequence[WorkerLine], exit: int, hung: bool, limit: float, stderr: str
) -> tuple[RunStatus, str]:
    refused = [line.message for line in lines if isinstance(line, Refused)]
    if refused and refused[-1]:  # the worker wrote it and exited: nothing else counts
        return "untestable", refused[-1]
    if hung:
        return "hung", f"watchdog killed the worker after {limit:.1f} s"
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    why = "; ".join(x.message for x in lines if isinstance(x, Untestable | Failed)) or last
    if any(isinstance(line, Untestable | Refused) for line in lines):  # exit EXIT_UNTESTABLE
        return "untestable", why or f"worker exited with {exit}"
    if exit == EXIT_OK and any(isinstance(line, Done) for line in lines):
        return "completed", ""
    died = f"worker exited with {exit}" + (f": {why}" if why else "")
    return ("crashed" if any(isinstance(line, Call) for line in lines) else "untestable"), died
