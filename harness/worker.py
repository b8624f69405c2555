"""One (scenario, factory) run in its own process: ``python -m harness.worker JOB.json``.

JOB.json holds a :class:`harness.messages.Job`. The worker appends one
:data:`harness.messages.WorkerLine` per line to ``Job.out``, flushed as it goes, so a worker
killed by the watchdog leaves everything it recorded (each line with the values of
secret-named environment variables replaced, :func:`harness.redact.scrub`'s net). The
vocabulary (line kinds, sample labels, exit codes) is :mod:`harness.messages`; here is when
each line is written:

- ``Environment`` first;
- ``Sample``: ``START`` before the gateway opens, ``label_for_turn(N)`` after each turn and its
  idle gap (with concurrency, once all sessions finished turn N), then three post-session
  samples: ``LIVE_AFTER_GC`` after ``gc.collect()`` with the gateway still running (its
  shared client open), ``AFTER_CLOSE`` once the shared client is closed, ``AFTER_GC`` after
  another ``gc.collect()``. Each sample waits for the server to settle;
- ``Client`` once the shared client is built: which simulator runs (an
  ``openai.AsyncOpenAI`` selects :mod:`harness.agateway`);
- ``Call`` for every call, with the SDK retries counted in this process during it
  (:mod:`harness.sdk_retries`);
- ``Untestable`` when the factory cannot be resolved, raises while building the shared
  client, or returns a client of another kind than the scenario's ``client.kind``
  (``EXIT_UNTESTABLE``);
- ``Failed`` when the worker itself fails (``EXIT_ERROR``);
- ``Refused`` when code in the worker (the factory, or the client it built) tried to connect
  or look a name up off loopback (:mod:`harness.netguard`): nothing was sent, and the worker
  exits at once with ``EXIT_UNTESTABLE``, so a factory that catches the error cannot carry
  on and look healthy;
- ``Done`` last, after a complete session (``EXIT_OK``).

The worker runs under :func:`harness.processes.guard`: a supervisor half that reaps and kills
everything the factory started (daemons too) when the run ends, and everything at once when
the harness dies. Before the factory is imported, :func:`harness.netguard.install` refuses
every connection and name lookup off loopback, and NO_PROXY/no_proxy gain the loopback
hosts, so a proxy variable never carries the SDK's traffic to the mock server.

With ``Job.attribute`` (``--attribute``), :class:`harness.attribution.Attribution` is
installed before the factory is imported, the factory is wrapped to mark what it builds, and
each sample carries ``held_by``: who holds its sockets. Without it, none of that runs.

``EXIT_USAGE``: the job file itself is unusable. With ``gc: off`` automatic garbage collection
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
from dataclasses import asdict, replace
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from harness.agateway import AsyncGateway, client_kind
from harness.attribution import Attribution, Socket
from harness.environment import fingerprint, target_commit
from harness.errors import FactoryError, UsageError
from harness.factory import resolve_factory
from harness.gateway import Gateway
from harness.messages import (
    AFTER_CLOSE,
    AFTER_GC,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNTESTABLE,
    EXIT_USAGE,
    LIVE_AFTER_GC,
    START,
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
    encode_line,
    label_for_turn,
)
from harness.netguard import Refusal, install, no_proxy
from harness.probe import Probe
from harness.processes import guard, leave
from harness.redact import replace_values, secret_values
from harness.result import CallRecord
from harness.schema import Scenario
from harness.sdk_retries import SdkRetryCounter
from harness.settle import Settler

__all__ = ["EXIT_ERROR", "EXIT_UNTESTABLE", "Job", "main", "run_job"]


class _Sink:
    """Appends JSON lines and flushes each one; safe to call from session threads."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        # Error texts come from the code under test; a value is searched for as JSON spells it.
        self._secrets = tuple(json.dumps(v)[1:-1] for v in secret_values(os.environ))

    def write(self, line: WorkerLine) -> None:
        text = replace_values(encode_line(line), self._secrets)
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def run_job(job: Job, sink: _Sink) -> int:
    """Run the job, recording into ``sink``; returns the exit code."""
    environment = fingerprint()
    commit = target_commit(Path(job.root))
    if commit is not None:
        environment["target_commit"] = commit
    sink.write(Environment(environment))
    # Installed before the factory's import: a module-level client is made there.
    attribution = Attribution(Path(job.root)) if job.attribute else None
    if attribution is not None:
        attribution.install()
    try:
        factory = resolve_factory(job.factory, Path(job.root))
    except FactoryError as exc:
        sink.write(Untestable(str(exc)))
        return EXIT_UNTESTABLE
    scenario = Scenario.from_dict(job.scenario)
    probe = Probe(job.port)
    settler = None if job.settle_fd is None else Settler(job.settle_fd, probe)

    def sample(label: str, turn: int = 0) -> None:
        reading = probe.read() if settler is None else settler.settle()
        events = scenario.session.events_at(turn)  # marks the turn where an event ran
        taken = replace(probe.sample(label, turn, reading), events=events)
        if attribution is not None:
            if turn:
                attribution.turn_done(turn)
            held = attribution.holders([Socket(fd, status) for fd, status in reading.held()])
            taken = replace(taken, held_by=held)
        sink.write(Sample(taken))

    if scenario.session.gc == "off":
        gc.disable()
    try:
        with SdkRetryCounter() as retries:
            watched = factory if attribution is None else attribution.watch(factory)
            gateway = Gateway(scenario, watched, job.base_url, fallback_url=job.fallback_base_url)
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
    sample(START)
    try:
        gateway.open()
    except Exception as exc:  # the factory is user code: anything may come out of it
        sink.write(
            Untestable(
                f"factory {spec!r} raised building the shared client: {type(exc).__name__}: {exc}"
            )
        )
        return EXIT_UNTESTABLE
    kind = client_kind(gateway.shared)
    if gateway.scenario.client.kind not in ("any", kind):
        sink.write(
            Untestable(
                f"scenario {gateway.scenario.name!r} requires client.kind "
                f"{gateway.scenario.client.kind}; factory {spec!r} returned "
                f"{type(gateway.shared).__qualname__} ({kind})"
            )
        )
        return EXIT_UNTESTABLE
    sink.write(Client(kind))
    retries.take()  # retries while building the shared client belong to no call

    def on_call(record: CallRecord) -> None:
        # Called in the session thread (or, async, the task) that made the call, right after.
        sink.write(Call(replace(record, sdk_retries=retries.take())))

    def on_turn(turn: int) -> None:
        sample(label_for_turn(turn), turn)

    if kind == "async":
        asyncio.run(_run_async(AsyncGateway.adopt(gateway), on_call, on_turn, sample))
    else:
        gateway.run(on_call=on_call, on_turn=on_turn)
        _live_sample(sample)
        gateway.close()
        _closed_samples(sample)
    sink.write(Done())
    return EXIT_OK


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
    sample(LIVE_AFTER_GC)


def _closed_samples(sample: Callable[..., None]) -> None:
    """After the gateway's shutdown: before and after a last collection."""
    sample(AFTER_CLOSE)
    gc.collect()
    sample(AFTER_GC)


def _contain(job: Job, sink: _Sink) -> None:
    """Keep this process on loopback from here on; a refusal ends it (exit code 3)."""
    host = urlsplit(job.base_url).hostname
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = no_proxy(os.environ.get(name, ""), [host] if host else [])

    def refused(refusal: Refusal) -> None:
        message = refusal_message(refusal, job.factory)
        sink.write(Refused(**asdict(refusal), message=message))
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
        # The SDK's own call from the gateway, or a library thread (asyncio's resolver) doing
        # work the factory handed it: no frame to name, so name the factory.
        else f"from the client that factory {spec!r} built or library code it called "
        "(no line of the code under test on the thread's stack)"
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
            sink.write(Failed(f"{type(exc).__name__}: {exc}"))
            return EXIT_ERROR


if __name__ == "__main__":
    leave(main())
