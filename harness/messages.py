"""The process vocabulary: everything the runner, the zygote and a worker say to each other.

Theory of operation
-------------------
Three kinds of process take part in one run, and this module is the only place their
messages are spelled::

    runner --JOB.json (Job)-----------------------------> worker
    runner <--out.jsonl (one WorkerLine a line)---------- worker, then its exit code
    runner --ForkRequest / KillRequest (SEQPACKET)------> zygote
    runner <--Ready / Started / Exited / ForkFailed------ zygote

**The job.** The runner writes one :class:`Job` as JOB.json; the worker loads it with
:meth:`Job.load` (an unusable file is :data:`EXIT_USAGE`).

**Worker lines.** The worker appends one JSON object per line to ``Job.out``, flushed as it
goes, so a worker killed by the watchdog leaves everything it recorded. ``"type"`` names the
kind; each kind is one frozen dataclass below (:func:`encode_line` / :func:`parse_line`):

- :class:`Environment` first (python, openai, ... versions);
- :class:`Sample` at each :data:`START`, :func:`label_for_turn` N, :data:`LIVE_AFTER_GC`,
  :data:`AFTER_CLOSE` and :data:`AFTER_GC` (in that order; see :mod:`harness.worker`), with
  ``held_by`` when the job has ``attribute`` and the sample found sockets
  (:mod:`harness.attribution`);
- :class:`Client` once the shared client is built ("sync" or "async");
- :class:`Call` for every call;
- :class:`Untestable` (the factory cannot be used; exit :data:`EXIT_UNTESTABLE`),
  :class:`Failed` (the worker itself failed; exit :data:`EXIT_ERROR`), :class:`Refused`
  (traffic off loopback was refused; exit :data:`EXIT_UNTESTABLE` at once);
- :class:`Done` last, after a complete session (exit :data:`EXIT_OK`).

The runner scores a run from these lines, the exit code and whether its watchdog fired
(:func:`harness.runner.classify`): the exit code alone never decides, a line does.

**Zygote messages.** One JSON object per SOCK_SEQPACKET message (at most
:data:`MESSAGE_MAX` bytes), tagged by ``"type"``; a fork request carries the descriptors
the worker inherits (``fds``: their numbers in the runner) as SCM_RIGHTS beside it.
Requests: :class:`ForkRequest`, :class:`KillRequest`, and from the zygote's owner
:class:`AttachRequest` (one more connection, sent beside it). Reports, on each connection:
:class:`Ready` once the zygote has imported the stack, then per run :class:`Started` (its
pid) or :class:`ForkFailed`, and :class:`Exited` once reaped.

**Settling.** Before each sample the worker asks the runner's mock server to settle over an
inherited socket pair (``Job.settle_fd``), one line each way; :mod:`harness.settle` owns
that channel and documents it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Self

from harness.errors import UsageError, WorkerError
from harness.result import (  # the sample labels are defined with SocketSample
    AFTER_CLOSE,
    AFTER_GC,
    LIVE_AFTER_GC,
    START,
    TURN_PREFIX,
    CallRecord,
    SocketSample,
    is_turn_label,
    label_for_turn,
)
from harness.schema import Scenario

__all__ = [
    "AFTER_CLOSE",
    "AFTER_GC",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_UNTESTABLE",
    "EXIT_USAGE",
    "LIVE_AFTER_GC",
    "MESSAGE_MAX",
    "ORIGINS",
    "START",
    "TURN_PREFIX",
    "AttachRequest",
    "Call",
    "Client",
    "Done",
    "Environment",
    "Exited",
    "Failed",
    "ForkFailed",
    "ForkRequest",
    "Job",
    "KillRequest",
    "Ready",
    "Refused",
    "Sample",
    "Started",
    "Untestable",
    "WorkerLine",
    "ZygoteReport",
    "ZygoteRequest",
    "encode",
    "encode_line",
    "is_turn_label",
    "label_for_turn",
    "parse_line",
    "parse_report",
    "parse_request",
    "start_digest",
]

# --- the worker's exit codes -----------------------------------------------------------------

EXIT_OK: Final = 0  # a complete session; a Done line was written
EXIT_ERROR: Final = 1  # the worker itself failed; a Failed line was written
EXIT_USAGE: Final = 2  # the job file is unusable; nothing was written
EXIT_UNTESTABLE: Final = 3  # an Untestable or Refused line was written

# --- the job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What one worker runs; written by the runner as JOB.json.

    ``scenario`` is the validated scenario's ``to_dict()`` (the worker rebuilds it with
    ``Scenario.from_dict``, so both run the same value); ``settle_fd`` the inherited end of
    the settle channel (:mod:`harness.settle`; None: samples are not synchronised with the
    server); ``fallback_base_url`` the second mock server of a ``fallback`` event ("": none);
    ``attribute`` turns leak attribution on (:mod:`harness.attribution`: samples then carry
    ``held_by``).
    """

    scenario: dict[str, Any]
    factory: str
    root: str
    base_url: str
    port: int
    out: str
    settle_fd: int | None = None
    fallback_base_url: str = ""
    attribute: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Job:
        """The job in ``path``; UsageError (the worker exits :data:`EXIT_USAGE`) if unusable."""
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


# --- worker lines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """Where the worker runs: interpreter, SDK and target versions (first line)."""

    TYPE: ClassVar[str] = "environment"
    values: Mapping[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return dict(self.values)

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Environment:
        return cls({k: str(v) for k, v in data.items()})


@dataclass(frozen=True)
class Sample:
    """One socket sample (its label says when it was taken)."""

    TYPE: ClassVar[str] = "sample"
    sample: SocketSample

    def fields(self) -> dict[str, Any]:
        return self.sample.to_dict()

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Sample:
        return cls(SocketSample.from_dict(data))


@dataclass(frozen=True)
class Client:
    """Which simulator runs: the shared client's kind, "sync" or "async"."""

    TYPE: ClassVar[str] = "client"
    kind: str

    def fields(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Client:
        return cls(str(data.get("kind", "")))


@dataclass(frozen=True)
class Call:
    """One call the gateway made."""

    TYPE: ClassVar[str] = "call"
    record: CallRecord

    def fields(self) -> dict[str, Any]:
        return asdict(self.record)

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Call:
        return cls(CallRecord.from_dict(data))


@dataclass(frozen=True)
class _Text:
    """A line that carries one ``message``."""

    message: str

    def fields(self) -> dict[str, Any]:
        return {"message": self.message}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Self:
        return cls(str(data.get("message", "")))


@dataclass(frozen=True)
class Untestable(_Text):
    """The factory cannot be used (unresolvable, raised, wrong client kind); exit 3."""

    TYPE: ClassVar[str] = "untestable"


@dataclass(frozen=True)
class Failed(_Text):
    """The worker itself failed (``"type": "error"``); exit 1."""

    TYPE: ClassVar[str] = "error"


@dataclass(frozen=True)
class Refused:
    """Code in the worker tried to leave loopback (:class:`harness.netguard.Refusal`'s
    fields and the one-line ``message``); nothing was sent, and the worker exited 3."""

    TYPE: ClassVar[str] = "refused"
    event: str
    action: str
    destination: str
    origin: str | None
    message: str

    def fields(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Refused:
        origin = data.get("origin")
        return cls(
            event=str(data.get("event", "")),
            action=str(data.get("action", "")),
            destination=str(data.get("destination", "")),
            origin=None if origin is None else str(origin),
            message=str(data.get("message", "")),
        )


@dataclass(frozen=True)
class Done:
    """The session ran to its end (last line); exit 0."""

    TYPE: ClassVar[str] = "done"

    def fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Done:
        return cls()


WorkerLine = Environment | Sample | Client | Call | Untestable | Failed | Refused | Done
_LINES: Final[dict[str, type[WorkerLine]]] = {
    kind.TYPE: kind
    for kind in (Environment, Sample, Client, Call, Untestable, Failed, Refused, Done)
}


def encode_line(line: WorkerLine) -> str:
    """One compact JSON object, without its newline."""
    return json.dumps({"type": line.TYPE, **line.fields()}, separators=(",", ":"))


def parse_line(text: str) -> WorkerLine:
    """The line ``text`` holds; ValueError when it is not JSON (a line cut short by a kill),
    WorkerError when it is JSON of no known kind."""
    data = json.loads(text)
    kind = data.pop("type", None) if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in _LINES:
        raise WorkerError(f"worker output: unknown line type {kind!r}")
    return _LINES[kind].from_fields(data)


# --- zygote messages ---------------------------------------------------------------------------

# Beside the control socket: where each top-level module the zygote preloaded was loaded from,
# written before Ready (too long for one message).
ORIGINS: Final = "preloaded.json"
MESSAGE_MAX: Final = 1 << 16  # one request or report: a JSON object with two paths


@dataclass(frozen=True)
class ForkRequest:
    """Fork a worker for ``job``, its stderr to ``stderr``, running in folder ``root``;
    ``fds`` are the runner's numbers of the descriptors sent beside the message, in order
    (the worker gets them there)."""

    TYPE: ClassVar[str] = "fork"
    id: int
    job: str
    stderr: str
    root: str
    fds: tuple[int, ...] = ()


@dataclass(frozen=True)
class KillRequest:
    """Kill run ``id``'s worker and every descendant (its Exited report follows)."""

    TYPE: ClassVar[str] = "kill"
    id: int


@dataclass(frozen=True)
class AttachRequest:
    """Serve the connection sent beside this request as one more client (its own runs; its
    hang-up kills only them). Only the zygote's owner may ask."""

    TYPE: ClassVar[str] = "attach"


@dataclass(frozen=True)
class Ready:
    """The zygote has imported the stack and serves forks: ``origins`` is the path of its
    :data:`ORIGINS` file, ``digest`` the :func:`start_digest` of how it was started."""

    TYPE: ClassVar[str] = "ready"
    origins: str
    digest: str


@dataclass(frozen=True)
class Started:
    """Run ``id``'s worker is running as ``pid``."""

    TYPE: ClassVar[str] = "started"
    id: int
    pid: int


@dataclass(frozen=True)
class ForkFailed:
    """Run ``id``'s worker could not be forked, and why."""

    TYPE: ClassVar[str] = "fork-failed"
    id: int
    error: str


@dataclass(frozen=True)
class Exited:
    """Run ``id``'s worker was reaped with ``exit`` (negative: killed by that signal)."""

    TYPE: ClassVar[str] = "exited"
    id: int
    exit: int


ZygoteRequest = ForkRequest | KillRequest | AttachRequest
ZygoteReport = Ready | Started | ForkFailed | Exited
_REQUESTS: Final[dict[str, type[ZygoteRequest]]] = {
    k.TYPE: k for k in (ForkRequest, KillRequest, AttachRequest)
}
_REPORTS: Final[dict[str, type[ZygoteReport]]] = {
    k.TYPE: k for k in (Ready, Started, ForkFailed, Exited)
}


def start_digest(python: str, env: Mapping[str, str]) -> str:
    """A digest of an interpreter and environment: a client that did not start the zygote
    compares its own with the zygote's (:class:`Ready`) without either being sent whole."""
    text = json.dumps([python, sorted(env.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode(message: ZygoteRequest | ZygoteReport) -> bytes:
    """One SEQPACKET message."""
    data = {"type": message.TYPE, **asdict(message)}
    return json.dumps(data, separators=(",", ":")).encode()


def parse_request(data: bytes) -> ZygoteRequest:
    """The request ``data`` holds; WorkerError for anything else."""
    return _parse(data, _REQUESTS)  # type: ignore[return-value]


def parse_report(data: bytes) -> ZygoteReport:
    """The report ``data`` holds; WorkerError for anything else."""
    return _parse(data, _REPORTS)  # type: ignore[return-value]


def _parse(data: bytes, kinds: Mapping[str, type[ZygoteRequest | ZygoteReport]]) -> object:
    message = json.loads(data)
    kind = message.pop("type", None) if isinstance(message, dict) else None
    if not isinstance(kind, str) or kind not in kinds:
        raise WorkerError(f"zygote message of unknown type {kind!r}: {data[:200]!r}")
    if "fds" in message:
        message["fds"] = tuple(message["fds"])
    return kinds[kind](**message)
