"""Result values: what one (scenario, variant) run measured.

A worker produces the raw pieces (:class:`CallRecord`, :class:`SocketSample` series, the mock
server's :class:`ServerStats`); :func:`summarize` turns them into one frozen
:class:`RunResult` whose derived metrics (errors by type, CLOSE_WAIT peak and growth,
latency percentiles) are computed here once. Verdicts and report writers read these fields and
never recompute them. Every value round-trips through ``to_dict()``/``from_dict()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from harness.holders import Holder

__all__ = [
    "AFTER_CLOSE",
    "AFTER_GC",
    "COUNT_FIELDS",
    "LIVE_AFTER_GC",
    "SERVER_ERROR",
    "START",
    "TURN_PREFIX",
    "CallRecord",
    "RunResult",
    "RunStatus",
    "ServerCall",
    "ServerStats",
    "SocketSample",
    "event_marks",
    "held_sample",
    "is_turn_label",
    "label_for_turn",
    "percentile",
    "summarize",
    "turn_label",
]

# SocketSample labels, in the order a worker takes them (harness.messages re-exports them with
# the rest of the process vocabulary; they live here, with the value, so this module imports
# nothing of the harness).
START: Final = "start"  # before the gateway opens
TURN_PREFIX: Final = "turn "  # "turn N": after turn N and its idle gap
LIVE_AFTER_GC: Final = "live after gc"  # gc.collect() with the shared client still open
AFTER_CLOSE: Final = "after close"  # once the shared client is closed
AFTER_GC: Final = "after gc"  # after another gc.collect()


def label_for_turn(turn: int) -> str:
    """The label of the sample after turn ``turn`` (1-based): ``"turn 3"``."""
    return f"{TURN_PREFIX}{turn}"


def is_turn_label(label: str) -> bool:
    """True for the labels of the per-turn series."""
    return label.startswith(TURN_PREFIX)


# ServerStats.faults_fired key counting the mock server's own failures (a harness bug).
SERVER_ERROR = "server_error"

# completed: the session ran to its end; hung: the watchdog killed the worker;
# crashed: the worker died after the first call; untestable: the factory could not be
# imported or the worker died before the first call.
RunStatus = Literal["completed", "hung", "crashed", "untestable"]


# What a run measured, without timings or raw records: the fields two runs of one cell are
# compared on (fresh vs forked workers in tests/test_zygote.py and benchmarks/bench_regress.py).
COUNT_FIELDS = (
    "status",
    "calls",
    "errors",
    "errors_by_type",
    "retries",
    "sdk_retries",
    "connections",
    "close_wait_series",
    "established_series",
    "fds_series",
    "close_wait_live_after_gc",
    "fds_live_after_gc",
    "close_wait_after_close",
    "close_wait_after_gc",
    "client_kind",
)


@dataclass(frozen=True)
class CallRecord:
    """One LLM round trip made by the gateway simulator."""

    session: int  # 0-based concurrent session index
    turn: int  # 1-based
    round: int  # 1-based round trip within the turn (tool-call rounds)
    ok: bool
    latency_ms: float
    started_s: float  # seconds since the session began
    error_type: str | None = None  # e.g. "openai.APIConnectionError"
    # "type: message" for the exception and each __cause__/__context__ below it
    error_chain: tuple[str, ...] = ()
    sdk_retries: int = 0  # retries the SDK announced in the client process during the call
    # The factory raised building this call's request client (the error fields say what):
    # the code under test failed before any request. False in files written before it existed.
    factory_raised: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallRecord:
        return cls(**{**data, "error_chain": tuple(data.get("error_chain", ()))})


@dataclass(frozen=True)
class SocketSample:
    """The worker's sockets toward the mock server's port, and its open fds, at one moment."""

    label: str  # START, label_for_turn(3), LIVE_AFTER_GC, AFTER_CLOSE, AFTER_GC
    close_wait: int
    established: int
    fds: int
    turn: int = 0  # the turn just finished, 0 outside the turn series
    events: tuple[str, ...] = ()  # the lifecycle events of this turn (session.events)
    # With attribution on: who holds the CLOSE_WAIT and ESTABLISHED sockets (harness.holders)
    held_by: tuple[Holder, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``events`` and ``held_by`` only when there are some (older outputs
        stay identical)."""
        data = asdict(self)
        if self.events:
            data["events"] = list(self.events)
        else:
            del data["events"]
        if self.held_by:
            data["held_by"] = [h.to_dict() for h in self.held_by]
        else:
            del data["held_by"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SocketSample:
        return cls(
            **{
                **data,
                "events": tuple(data.get("events", ())),
                "held_by": tuple(Holder.from_dict(h) for h in data.get("held_by", ())),
            }
        )


@dataclass(frozen=True)
class ServerCall:
    """One API request as the mock server saw it."""

    index: int  # 1-based server-side call number
    connection: int  # 1-based connection id
    path: str
    stream: bool
    status: int  # 0 when the request was dropped without a response
    retry_count: int  # the x-stainless-retry-count header, 0 when absent
    fault: str | None = None
    started_s: float = 0.0
    duration_ms: float = 0.0
    # The request's x-session-id header (a timeline's gateway sends it); "" without one, and
    # then left out of to_dict(), so results of scenarios without a timeline stay the same.
    session: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.session:
            del data["session"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerCall:
        return cls(**data)


@dataclass(frozen=True)
class ServerStats:
    """The mock server's bookkeeping for one run."""

    connections: int = 0
    requests_per_connection: tuple[int, ...] = ()
    retry_counts: tuple[int, ...] = ()  # x-stainless-retry-count of each call in `calls`
    faults_fired: Mapping[str, int] = field(default_factory=dict)
    calls: tuple[ServerCall, ...] = ()  # the most recent calls (the server's call log limit)
    # Exact over the whole run, however many calls the log kept. Values built without them
    # (older results.json files, hand-made values) take them from the calls listed.
    total_calls: int = 0
    total_retries: int = 0

    def __post_init__(self) -> None:
        if self.total_calls < len(self.retry_counts):
            listed_retries = sum(1 for count in self.retry_counts if count > 0)
            object.__setattr__(self, "total_calls", len(self.retry_counts))
            object.__setattr__(self, "total_retries", max(self.total_retries, listed_retries))

    @property
    def retries(self) -> int:
        """Requests that were SDK retries (retry-count header > 0), over the whole run."""
        return self.total_retries

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["calls"] = [call.to_dict() for call in self.calls]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerStats:
        return cls(
            connections=data.get("connections", 0),
            requests_per_connection=tuple(data.get("requests_per_connection", ())),
            retry_counts=tuple(data.get("retry_counts", ())),
            faults_fired=dict(data.get("faults_fired", {})),
            calls=tuple(ServerCall.from_dict(c) for c in data.get("calls", ())),
            total_calls=data.get("total_calls", 0),
            total_retries=data.get("total_retries", 0),
        )


@dataclass(frozen=True)
class RunResult:
    """Everything one (scenario, variant) run measured. Build it with :func:`summarize`."""

    scenario: str
    variant: str  # bundled variant name or factory spec
    status: RunStatus
    calls: int
    errors: int
    errors_by_type: Mapping[str, int]
    retries: int
    close_wait_series: tuple[int, ...]  # after each turn
    established_series: tuple[int, ...]
    fds_series: tuple[int, ...]
    close_wait_peak: int
    close_wait_growth: int  # last turn's count minus the count before the first turn
    close_wait_after_close: int
    close_wait_after_gc: int
    fds_growth: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    wall_s: float
    server: ServerStats
    records: tuple[CallRecord, ...]
    samples: tuple[SocketSample, ...]
    environment: Mapping[str, str]
    detail: str = ""  # why a run is hung/crashed/untestable; the worker's last stderr line
    # Defaults: results.json files written before these fields existed still load.
    sdk_retries: int = 0  # SDK retry attempts counted in the client process
    close_wait_live_after_gc: int = 0  # after the last turn and gc.collect(), gateway still up
    fds_live_after_gc: int = 0
    client_kind: str = ""  # "sync" or "async": which simulator ran ("" when none did)

    @property
    def connections(self) -> int:
        return self.server.connections

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["server"] = self.server.to_dict()
        data["samples"] = [s.to_dict() for s in self.samples]
        data["errors_by_type"] = dict(self.errors_by_type)
        data["environment"] = dict(self.environment)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        fields: dict[str, Any] = dict(data)
        for name in ("close_wait_series", "established_series", "fds_series"):
            fields[name] = tuple(fields[name])
        fields["server"] = ServerStats.from_dict(data["server"])
        fields["records"] = tuple(CallRecord.from_dict(r) for r in data["records"])
        fields["samples"] = tuple(SocketSample.from_dict(s) for s in data["samples"])
        return cls(**fields)


def event_marks(result: RunResult) -> str:
    """``"turn 2: reload; turn 5: terminate"``: where lifecycle events ran ("" when none)."""
    return "; ".join(
        f"turn {s.turn}: {', '.join(s.events)}"
        for s in result.samples
        if s.events and is_turn_label(s.label)
    )


def held_sample(result: RunResult) -> SocketSample | None:
    """The sample whose holders reports show (attribution on): ``live after gc`` when it
    found held sockets, else the turn sample with the most; None when no sample has any."""
    held = [s for s in result.samples if s.held_by]
    live = next((s for s in held if s.label == LIVE_AFTER_GC), None)
    turns = [s for s in held if is_turn_label(s.label)]
    return live or max(turns, key=lambda s: sum(h.sockets for h in s.held_by), default=None)


def turn_label(sample: SocketSample) -> str:
    """A per-turn table's turn cell: ``3``, or ``3 [reload]`` when an event ran there."""
    return f"{sample.turn} [{', '.join(sample.events)}]" if sample.events else str(sample.turn)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least 1
    return float(ordered[int(rank) - 1])


def _labelled(samples: Sequence[SocketSample], label: str) -> SocketSample | None:
    return next((s for s in samples if s.label == label), None)


def summarize(
    *,
    scenario: str,
    variant: str,
    status: RunStatus,
    records: Sequence[CallRecord],
    samples: Sequence[SocketSample],
    server: ServerStats,
    wall_s: float,
    environment: Mapping[str, str],
    detail: str = "",
    client_kind: str = "",
) -> RunResult:
    """Compute every derived metric once, from the raw records and samples."""
    turns = [s for s in samples if is_turn_label(s.label)]
    start = _labelled(samples, START)
    live = _labelled(samples, LIVE_AFTER_GC)
    after_close = _labelled(samples, AFTER_CLOSE)
    after_gc = _labelled(samples, AFTER_GC)
    cw = tuple(s.close_wait for s in turns)
    fds = tuple(s.fds for s in turns)
    base_cw = start.close_wait if start else 0
    latencies = [r.latency_ms for r in records]
    return RunResult(
        scenario=scenario,
        variant=variant,
        status=status,
        calls=len(records),
        errors=sum(1 for r in records if not r.ok),
        errors_by_type=dict(Counter(r.error_type or "?" for r in records if not r.ok)),
        retries=server.retries,
        close_wait_series=cw,
        established_series=tuple(s.established for s in turns),
        fds_series=fds,
        close_wait_peak=max(cw, default=0),
        close_wait_growth=(cw[-1] - base_cw) if cw else 0,
        close_wait_after_close=after_close.close_wait if after_close else 0,
        close_wait_after_gc=after_gc.close_wait if after_gc else 0,
        fds_growth=(fds[-1] - (start.fds if start else fds[0])) if fds else 0,
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        latency_max_ms=max(latencies, default=0.0),
        wall_s=wall_s,
        server=server,
        records=tuple(records),
        samples=tuple(samples),
        environment=dict(environment),
        detail=detail,
        sdk_retries=sum(r.sdk_retries for r in records),
        close_wait_live_after_gc=live.close_wait if live else 0,
        fds_live_after_gc=live.fds if live else 0,
        client_kind=client_kind,
    )
