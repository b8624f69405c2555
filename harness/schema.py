"""Scenario schema v1 as frozen values: the one place each key's default, range and choices live.

Every field of the dataclasses below carries its default, and numeric fields carry their
range in ``metadata`` (:func:`~harness.fields.number`); the choices of a text field are its
``Literal`` type. A field that must be given carries :data:`~harness.fields.REQUIRED`;
``client.kwargs`` names the section whose set keys it keeps (:func:`~harness.fields.section_of`);
a rule across fields of one section is that section's ``problem`` method
(:class:`~harness.fields.Problem`). A ``tuple[int, ...]`` is a list of 1-based call numbers,
and a union of dataclasses is told apart by the ``Literal`` field they share (``kind``). A
rule about a section's lists is its ``list_problem`` method, checked once they are read.
:mod:`harness.fields` says how these declarations are read: the YAML loader
(:mod:`harness.scenario`) reads them field by field, with no per-key code, and so does
:meth:`Scenario.from_dict`, which rebuilds a value from :meth:`Scenario.to_dict` (how a
validated scenario reaches the worker); the reference (docs/scenarios.md) states the same
values.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal

from harness.fields import REQUIRED, Problem, from_plain, number, section_of
from harness.variants import BUNDLED, PROVIDERS

__all__ = [
    "API",
    "ClientKwargs",
    "ClientSpec",
    "Event",
    "EventAction",
    "Expectation",
    "Expectations",
    "Fault",
    "HttpError",
    "Keepalive",
    "Reply",
    "ResetOnReuse",
    "Scenario",
    "ServerSpec",
    "SessionSpec",
    "Stall",
    "TimelineCall",
    "TimelineSession",
    "TruncateStream",
    "number",
]

API = Literal["chat.completions", "responses"]
CloseMode = Literal["fin", "rst", "silent"]
EventAction = Literal["terminate", "reload", "fallback"]
Expectation = Literal["pass", "fail", "observe"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_NO_LIMIT: Final = 1e9  # thresholds: any finite count
MAX_TURNS: Final = 100_000  # turns per session (a timeline's calls per session)
MAX_SESSIONS: Final = 256  # concurrency (a timeline's sessions)


@dataclass(frozen=True)
class Reply:
    """What the mock server answers: ``text`` split into ``chunks`` SSE deltas."""

    text: str = "pong"
    chunks: int = number(3, lo=1, hi=100_000)
    chunk_delay_ms: float = number(0, hi=600_000)


@dataclass(frozen=True)
class Keepalive:
    """Idle keep-alive reaping: close a connection idle ``idle_timeout_ms`` (None: never)."""

    idle_timeout_ms: float | None = number(None, lo=1)
    close: CloseMode = "fin"


@dataclass(frozen=True)
class ResetOnReuse:
    """Drop a request that arrives on an already-used connection, with FIN or RST."""

    mode: Literal["fin", "rst"] = "rst"
    calls: tuple[int, ...] | None = None
    kind: Literal["reset_on_reuse"] = "reset_on_reuse"


@dataclass(frozen=True)
class HttpError:
    """Answer with an OpenAI-shaped error ``status`` (and ``retry-after`` when given)."""

    status: int = number(500, lo=400, hi=599)
    retry_after_s: float | None = number(None, hi=3600)
    calls: tuple[int, ...] | None = None
    kind: Literal["http_error"] = "http_error"


@dataclass(frozen=True)
class Stall:
    """Wait ``ms`` before the first response byte or between stream chunks."""

    ms: float = number(1000, hi=600_000)
    at: Literal["first_byte", "between_chunks"] = "first_byte"
    calls: tuple[int, ...] | None = None
    kind: Literal["stall"] = "stall"


@dataclass(frozen=True)
class TruncateStream:
    """End a stream after ``after_chunks`` chunks, without its final event, and close."""

    after_chunks: int = number(1, hi=100_000)
    calls: tuple[int, ...] | None = None
    kind: Literal["truncate_stream"] = "truncate_stream"


Fault = ResetOnReuse | HttpError | Stall | TruncateStream
FAULTS: Final[Mapping[str, type[Fault]]] = MappingProxyType(
    {cls.kind: cls for cls in (ResetOnReuse, HttpError, Stall, TruncateStream)}
)


@dataclass(frozen=True)
class ServerSpec:
    """The ``server:`` section: how the mock provider behaves."""

    api: API = "chat.completions"
    reply: Reply = field(default_factory=Reply)
    latency_ms: float = number(0, hi=600_000)
    keepalive: Keepalive = field(default_factory=Keepalive)
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True)
class ClientKwargs:
    """The keys ``client.kwargs`` may hold, with the SDK's defaults (used when absent)."""

    max_retries: int = number(2, hi=100)
    timeout: float = number(600.0, lo=0.001, hi=3600, cast=float)


@dataclass(frozen=True)
class ClientSpec:
    """The ``client:`` section: extra OpenAI kwargs, whether request clients are closed, and
    the client kind the scenario requires (``any``: whatever the factory returns)."""

    # Only the keys the scenario sets (see ClientKwargs): the SDK applies its own defaults.
    kwargs: Mapping[str, Any] = section_of(ClientKwargs)
    close_request_clients: bool = True
    kind: Literal["any", "sync", "async"] = "any"
    # request: a fresh client per call (the factory's shared=False); shared: every call goes
    # through the shared client the session holds (a provider object keeping one client).
    calls_via: Literal["request", "shared"] = "request"


@dataclass(frozen=True)
class Event:
    """One gateway lifecycle event of ``session.events``, run once.

    When: ``after_turn`` (after that turn's idle gap, all sessions at the barrier) or
    ``during_turn`` plus ``at_ms`` (that long after the turn's calls started, while they are
    in flight); exactly one of the two is set. ``terminate`` closes the gateway's shared
    client (the factory module's ``terminate_openai_client`` hook, else ``close()``);
    ``reload`` terminates it and builds a new one from the same kept ``client_kwargs``, while
    the sessions keep the one they hold; ``fallback`` builds a second shared client from a copy
    of the kept kwargs with a second mock server's ``base_url``, and every later call goes
    there.
    """

    action: EventAction = field(default="terminate", metadata=REQUIRED)
    after_turn: int | None = number(None, lo=1, hi=100_000)
    during_turn: int | None = number(None, lo=1, hi=100_000)
    at_ms: float = number(0, hi=600_000)

    @property
    def turn(self) -> int:
        """The turn the event belongs to (marked in per-turn tables)."""
        return self.after_turn if self.after_turn is not None else self.during_turn or 0

    @property
    def label(self) -> str:
        """``reload after turn 3``, ``terminate during turn 2 at 150 ms``."""
        if self.after_turn is not None:
            return f"{self.action} after turn {self.after_turn}"
        return f"{self.action} during turn {self.during_turn} at {self.at_ms:g} ms"

    def problem(self, given: Collection[str], session: SessionSpec) -> Problem | None:
        """When the event runs, checked against the keys ``given`` and its ``session``."""
        whens = [name for name in ("after_turn", "during_turn") if name in given]
        if len(whens) != 1:
            return Problem(None, "needs exactly one of `after_turn: N` or `during_turn: N`")
        if self.turn > session.turns:
            message = f"{self.turn} is after the last turn; the session has {session.turns} turns"
            return Problem(whens[0], message, "value")
        if "at_ms" in given and whens[0] != "during_turn":
            message = "only goes with `during_turn`; `after_turn` runs after the turn's gap"
            return Problem("at_ms", message)
        if whens[0] == "during_turn" and "at_ms" not in given:
            return Problem("at_ms", "missing; say when in the turn, e.g. `at_ms: 100`", "section")
        return None


@dataclass(frozen=True)
class TimelineCall:
    """One call of a ``session.timeline`` session: streamed or not, then idle ``idle_ms``."""

    stream: bool = False
    idle_ms: float = number(0)


@dataclass(frozen=True)
class TimelineSession:
    """One session of ``session.timeline``: it starts ``start_ms`` after the gateway's first
    session and makes its ``calls`` in order, each followed by its own idle gap. ``name`` is
    what its requests' ``x-session-id`` header says ("": its 1-based number)."""

    start_ms: float = number(0)
    calls: tuple[TimelineCall, ...] = ()
    name: str = ""

    def list_problem(self, given: Collection[str], session: SessionSpec) -> Problem | None:
        """A session makes at least one call, and at most ``session.turns``' range."""
        if not self.calls:
            where: Literal["value", "section"] = "value" if "calls" in given else "section"
            key = "calls" if "calls" in given else None
            return Problem(key, "needs at least one call, e.g. `calls: [{idle_ms: 0}]`", where)
        if len(self.calls) > MAX_TURNS:
            return Problem("calls", f"has {len(self.calls)} calls; at most {MAX_TURNS}", "value")
        if not is_header_value(self.name):
            return Problem("name", "goes in a header: use printable ASCII, at most 64 characters")
        return None


def is_header_value(text: str) -> bool:
    """Whether ``text`` can be a session's ``x-session-id`` header as it is."""
    return len(text) <= 64 and all(" " <= ch <= "~" for ch in text)


# Keys a timeline decides (its sessions, calls, streams and gaps): not given beside it.
_TIMELINE_DECIDES: Final = (
    "turns",
    "calls_per_turn",
    "idle_between_turns_ms",
    "stream",
    "concurrency",
    "events",
)


@dataclass(frozen=True)
class SessionSpec:
    """The ``session:`` section: the shape of the gateway's traffic."""

    turns: int = number(10, lo=1, hi=MAX_TURNS)
    calls_per_turn: int = number(1, lo=1, hi=1000)
    idle_between_turns_ms: float = number(0)
    stream: bool = False
    concurrency: int = number(1, lo=1, hi=MAX_SESSIONS)
    abandon_streams: bool = False
    gc: Literal["off", "auto"] = "off"
    events: tuple[Event, ...] = ()
    # A replayed production timeline (``harness import``): one item per session, each call
    # with its own stream flag and idle gap. It decides ``turns`` (the longest session's
    # calls) and ``concurrency`` (its sessions); empty: the uniform session above.
    timeline: tuple[TimelineSession, ...] = ()

    def __post_init__(self) -> None:
        if self.timeline:  # every reader of turns and concurrency sees the timeline's
            object.__setattr__(self, "turns", max(len(s.calls) for s in self.timeline))
            object.__setattr__(self, "concurrency", len(self.timeline))

    def timeline_idle_ms(self) -> float:
        """The most a timeline session waits on purpose (start and gaps); 0 without one."""
        return max((s.start_ms + sum(c.idle_ms for c in s.calls) for s in self.timeline), default=0)

    def streams(self) -> bool:
        """Whether any call streams."""
        return self.stream or any(c.stream for s in self.timeline for c in s.calls)

    def events_at(self, turn: int) -> tuple[str, ...]:
        """The actions of the events that belong to ``turn``, in order (empty: none)."""
        return tuple(e.action for e in self.events if e.turn == turn)

    def problem(self, given: Collection[str], parent: object) -> Problem | None:
        """Fields that only go together (checked before ``events`` are read)."""
        if "timeline" in given:
            for key in _TIMELINE_DECIDES:
                if key in given:
                    return Problem(key, "goes without `timeline`; the timeline's calls decide it")
            return None
        if self.abandon_streams and not self.stream:
            return Problem(
                "abandon_streams", "needs `stream: true`; only a stream can be abandoned"
            )
        return None

    def list_problem(self, given: Collection[str], parent: object) -> Problem | None:
        """A timeline, once read: not empty, within ``concurrency``'s range."""
        if "timeline" not in given:
            return None
        if not self.timeline:
            return Problem("timeline", "needs at least one session, e.g. `- calls: [{}]`", "value")
        if len(self.timeline) > MAX_SESSIONS:
            message = f"has {len(self.timeline)} sessions; at most {MAX_SESSIONS}"
            return Problem("timeline", message, "value")
        if self.abandon_streams and not self.streams():
            return Problem("abandon_streams", "needs a call with `stream: true`")
        return None


@dataclass(frozen=True)
class Expectations:
    """The ``expect:`` section: thresholds a healthy client stays within (None: unchecked)."""

    errors: int | None = number(0, hi=_NO_LIMIT)
    retries: int | None = number(None, hi=_NO_LIMIT)
    sdk_retries: int | None = number(None, hi=_NO_LIMIT)
    close_wait_peak: int | None = number(None, hi=_NO_LIMIT)
    close_wait_growth: int | None = number(None, hi=_NO_LIMIT)
    close_wait_live_after_gc: int | None = number(None, hi=_NO_LIMIT)
    close_wait_after_close: int | None = number(None, hi=_NO_LIMIT)
    close_wait_after_gc: int | None = number(None, hi=_NO_LIMIT)
    connections: int | None = number(None, hi=_NO_LIMIT)
    p95_latency_ms: float | None = number(None, hi=_NO_LIMIT)


@dataclass(frozen=True)
class Scenario:
    """One validated scenario file."""

    name: str
    version: int = 1
    description: str = ""
    server: ServerSpec = field(default_factory=ServerSpec)
    client: ClientSpec = field(default_factory=ClientSpec)
    session: SessionSpec = field(default_factory=SessionSpec)
    expect: Expectations = field(default_factory=Expectations)
    # variant name or factory spec -> "pass" | "fail" | "observe"; empty: every bundled variant
    variants: Mapping[str, Expectation] = field(default_factory=lambda: _EMPTY)
    path: str = ""

    def variant_expectations(self) -> Mapping[str, Expectation]:
        """The variants this scenario runs, with what each must show.

        When ``variants:`` is absent every bundled variant runs: fixed ones must pass, buggy
        ones are only observed; with lifecycle events (``session.events``) only the provider
        variants keep those roles and the client-factory ones are observed: they have no
        terminate hook, so they do not model the provider the events act on (with
        ``calls_via: shared`` the gateway keeps their closed client and they fail).
        """
        if self.variants:
            return self.variants
        events = bool(self.session.events)
        return MappingProxyType(
            {
                name: "pass" if fixed and (name in PROVIDERS or not events) else "observe"
                for name, fixed in BUNDLED.items()
            }
        )

    def role_of(self, factory: str, *, named: bool) -> Expectation:
        """What ``factory`` (``--factory``) must show here: the role ``variants:`` gives it;
        else ``pass`` when the user named this scenario (its file or bundled name on the
        command line: ``run``, ``check``, ``regress FILE...``); else (found in a folder, or
        the default bundled set) ``observe`` in a scenario with lifecycle events (they judge
        how a gateway terminates its provider, which a factory they do not list may not
        model) and ``pass`` in the others. The implicit roles of a scenario without
        ``variants:`` are the bundled variants' (:meth:`variant_expectations`), not a
        factory's."""
        listed = self.variants.get(factory)
        if listed is not None:
            return listed
        return "observe" if self.session.events and not named else "pass"

    def to_dict(self) -> dict[str, Any]:
        """A plain-data copy (JSON-ready) of the validated scenario."""
        plain = replace(
            self,
            client=replace(self.client, kwargs=dict(self.client.kwargs)),
            variants=dict(self.variants),
        )
        data: dict[str, Any] = json.loads(json.dumps(asdict(plain)))  # tuples -> lists
        # Keys added after a value's first release are left out at their defaults, so the
        # serialized form of a scenario that does not use them stays byte-for-byte the same.
        if not self.session.events:
            del data["session"]["events"]
        else:
            data["session"]["events"] = [_event_dict(e) for e in self.session.events]
        if not self.session.timeline:
            del data["session"]["timeline"]
        if self.client.calls_via == ClientSpec.calls_via:
            del data["client"]["calls_via"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """The value :meth:`to_dict` was made from (``from_dict(s.to_dict()) == s``).

        For values this program wrote; files from users go through the loader.
        """
        value: Scenario = from_plain(cls, data)
        return value


def _event_dict(event: Event) -> dict[str, Any]:
    """An event's set keys only (``after_turn`` or ``during_turn`` with ``at_ms``)."""
    data: dict[str, Any] = {"action": event.action}
    if event.after_turn is not None:
        data["after_turn"] = event.after_turn
    else:
        data.update(during_turn=event.during_turn, at_ms=event.at_ms)
    return data
