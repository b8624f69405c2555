"""One (scenario, factory) run in its own process: ``python -m harness.worker JOB.json``.

JOB.json holds ``scenario`` (the validated scenario's ``to_dict()``; the worker rebuilds it
with ``Scenario.from_dict``, so parent and worker run the same value), ``factory`` (spec),
``root`` (dir), ``base_url``, ``port``, ``out`` (a JSON-lines file), ``settle_fd`` (the
inherited end of the runner's settle channel, see :mod:`harness.settle`; null: samples are
not synchronised with the server) and ``fallback_base_url`` (the second mock server of a
``fallback`` event; "" when the scenario has none). The worker appends one JSON object per
line, flushed as it goes, so a worker killed by the watchdog leaves everything it recorded
(each line with the values of secret-named environment variables replaced,
:func:`harness.redact.scrub`'s net):

- ``{"type": "environment", "python": ..., "openai": ...}`` first;
- ``{"type": "sample", <SocketSample fields>}``: "start" before the gateway opens, "turn N"
  after each turn and its idle gap (with concurrency, once all sessions finished turn N),
  then three post-session samples: "live after gc" after ``gc.collect()`` with the gateway
  still running (its shared client open), "after close" once the shared client is closed,
  "after gc" after another ``gc.collect()``. Each sample waits for the server to settle;
- ``{"type": "client", "kind": "sync" | "async"}`` once the shared client is built: which
  simulator runs (an ``openai.AsyncOpenAI`` selects :mod:`harness.agateway`);
- ``{"type": "call", <CallRecord fields>}`` for every call, with the SDK retries counted in
  this process during it (:mod:`harness.sdk_retries`);
- ``{"type": "untestable", "message": ...}`` when the factory cannot be resolved, raises
  while building the shared client, or returns a client of another kind than the scenario's
  ``client.kind`` (exit code 3);
- ``{"type": "error", "message": ...}`` when the worker itself fails (exit code 1);
- ``{"type": "refused", "event", "destination", "origin", "message"}`` when code in the
  worker (the factory, or the client it built) tried to connect or look a name up off
  loopback (:mod:`harness.netguard`): nothing was sent, and the worker exits at once with
  exit code 3, so a factory that catches the error cannot carry on and look healthy;
- ``{"type": "done"}`` last, after a complete session (exit code 0).

The worker runs under :func:`harness.processes.guard`: a supervisor half that reaps and kills
everything the factory started (daemons too) when the run ends, and everything at once when
the harness dies. Before the factory is imported, :func:`harness.netguard.install` refuses
every connection and name lookup off loopback, and NO_PROXY/no_proxy gain the loopback
hosts, so a proxy variable never carries the SDK's traffic to the mock server.

Exit code 2: the job file itself is unusable. With ``gc: off`` automatic garbage collection
is disabled for the whole session, so leaks that only GC would hide stay visible until the
explicit collections.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from harness.agateway import AsyncGateway, client_kind
from harness.environment import fingerprint, target_commit
from harness.errors import FactoryError, UsageError
from harness.factory import resolve_factory
from harness.gateway import Gateway
from harness.netguard import Refusal, install, no_proxy
from harness.probe import Probe
from harness.processes import guard, leave
from harness.redact import replace_values, secret_values
from harness.result import CallRecord, SocketSample
from harness.schema import Scenario
from harness.sdk_retries import SdkRetryCounter
from harness.settle import Settler

__all__ = ["EXIT_ERROR", "EXIT_UNTESTABLE", "Job", "main", "run_job"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNTESTABLE = 3


@dataclass(frozen=True)
class Job:
    """What one worker runs; written by the runner as JOB.json."""

    scenario: dict[str, Any]  # Scenario.to_dict()
    factory: str
    root: str
    base_url: str
    port: int
    out: str
    settle_fd: int | None = None
    fallback_base_url: str = ""  # the second mock server of a `fallback` event ("": none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, path: Path) -> Job:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            job = cls(**data)
            Scenario.from_dict(job.scenario)
            return job
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UsageError(
                f"job file {str(path)!r} is unusable: {type(exc).__name__}: {exc}; "
                f"it needs the keys scenario (a Scenario.to_dict()), factory, root, base_url, "
                "port, out"
            ) from exc


class _Sink:
    """Appends JSON lines and flushes each one; safe to call from session threads."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        # Error texts come from the code under test; a value is searched for as JSON spells it.
        self._secrets = tuple(json.dumps(v)[1:-1] for v in secret_values(os.environ))

    def write(self, kind: str, data: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, **data}, separators=(",", ":"))
        line = replace_values(line, self._secrets)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def call(self, record: CallRecord) -> None:
        self.write("call", asdict(record))

    def sample(self, sample: SocketSample) -> None:
        self.write("sample", sample.to_dict())


def run_job(job: Job, sink: _Sink) -> int:
    """Run the job, recording into ``sink``; returns the exit code."""
    environment = fingerprint()
    commit = target_commit(Path(job.root))
    if commit is not None:
        environment["target_commit"] = commit
    sink.write("environment", environment)
    try:
        factory = resolve_factory(job.factory, Path(job.root))
    except FactoryError as exc:
        sink.write("untestable", {"message": str(exc)})
        return EXIT_UNTESTABLE
    scenario = Scenario.from_dict(job.scenario)
    probe = Probe(job.port, os.getpid())
    settler = None if job.settle_fd is None else Settler(job.settle_fd, probe)

    def sample(label: str, turn: int = 0) -> None:
        if settler is not None:
            settler.settle()
        events = scenario.session.events_at(turn)  # marks the turn where an event ran
        sink.sample(replace(probe.sample(label, turn), events=events))

    if scenario.session.gc == "off":
        gc.disable()
    try:
        with SdkRetryCounter() as retries:
            gateway = Gateway(scenario, factory, job.base_url, fallback_url=job.fallback_base_url)
            return _session(gateway, job.factory, sink, sample, retries)
    finally:
        if settler is not None:
            settler.close()


def _session(
    gateway: Gateway,
    spec: str,
    sink: _Sink,
    sample: Callable[..., None],
    retries: SdkRetryCounter,
) -> int:
    """The gateway's life, sampled: start, each turn, then the three post-session samples."""
    sample("start")
    try:
        gateway.open()
    except Exception as exc:  # the factory is user code: anything may come out of it
        sink.write(
            "untestable",
            {
                "message": f"factory {spec!r} raised building the shared client: "
                f"{type(exc).__name__}: {exc}",
            },
        )
        return EXIT_UNTESTABLE
    kind = client_kind(gateway.shared)
    if gateway.scenario.client.kind not in ("any", kind):
        sink.write(
            "untestable",
            {
                "message": f"scenario {gateway.scenario.name!r} requires client.kind "
                f"{gateway.scenario.client.kind}; factory {spec!r} returned "
                f"{type(gateway.shared).__qualname__} ({kind})",
            },
        )
        return EXIT_UNTESTABLE
    sink.write("client", {"kind": kind})
    retries.take()  # retries while building the shared client belong to no call

    def on_call(record: CallRecord) -> None:
        # Called in the session thread (or, async, the task) that made the call, right after.
        sink.call(replace(record, sdk_retries=retries.take()))

    def on_turn(turn: int) -> None:
        sample(f"turn {turn}", turn)

    if kind == "async":
        asyncio.run(_run_async(AsyncGateway.adopt(gateway), on_call, on_turn, sample))
    else:
        gateway.run(on_call=on_call, on_turn=on_turn)
        _live_sample(sample)
        gateway.close()
        _closed_samples(sample)
    sink.write("done", {})
    return 0


async def _run_async(
    gateway: AsyncGateway,
    on_call: Callable[[CallRecord], None],
    on_turn: Callable[[int], None],
    sample: Callable[..., None],
) -> None:
    # The last samples are taken with the loop still running: the deciding sample is the one
    # after a collection with the gateway still up, before asyncio.run finalises anything.
    await gateway.run(on_call=on_call, on_turn=on_turn)
    _live_sample(sample)
    await gateway.close()
    _closed_samples(sample)


def _live_sample(sample: Callable[..., None]) -> None:
    gc.collect()  # the gateway is still up: what survives this is held for good
    sample("live after gc")


def _closed_samples(sample: Callable[..., None]) -> None:
    """After the gateway's shutdown: before and after a last collection."""
    sample("after close")
    gc.collect()
    sample("after gc")


def _contain(job: Job, sink: _Sink) -> None:
    """Keep this process on loopback from here on; a refusal ends it (exit code 3)."""
    host = urlsplit(job.base_url).hostname
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = no_proxy(os.environ.get(name, ""), [host] if host else [])

    def refused(refusal: Refusal) -> None:
        message = refusal_message(refusal, job.factory)
        sink.write("refused", {**asdict(refusal), "message": message})
        os.write(2, f"harness worker: untestable: {message}\n".encode())
        # Exit here, in whatever thread tried: raised, the error could be caught by the
        # factory or retried by the SDK, and the run would go on as if nothing happened.
        os._exit(EXIT_UNTESTABLE)

    install(refused, root=Path(job.root))


def refusal_message(refusal: Refusal, spec: str) -> str:
    """One line: what was refused, toward where, and from which line of the code under test."""
    where = (
        f"from {refusal.origin}"
        if refusal.origin is not None
        else f"from the client that factory {spec!r} built (no line of the factory ran it)"
    )
    return (
        f"refused {refusal.action} {refusal.destination} {where} ({refusal.event}): "
        "a worker may reach only loopback (127.0.0.0/8, ::1, localhost); nothing was sent"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.worker JOB.json``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    guard()  # from here on, nothing this run starts outlives it or the harness
    if len(args) != 1:
        print("usage: python -m harness.worker JOB.json", file=sys.stderr)
        return EXIT_USAGE
    try:
        job = Job.load(Path(args[0]))
        out = open(job.out, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except (UsageError, OSError) as exc:
        print(f"harness worker: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with out:
        sink = _Sink(out)
        _contain(job, sink)
        try:
            return run_job(job, sink)
        except Exception as exc:
            # Recorded and printed: the runner scores the run from what is already written.
            traceback.print_exc()
            sink.write("error", {"message": f"{type(exc).__name__}: {exc}"})
            return EXIT_ERROR


if __name__ == "__main__":
    leave(main())
