"""Scenario schema v1: frozen values, and YAML loading with file:line errors.

Every key but ``version`` has a default, and the dataclass defaults below are the one place
those defaults live (docs/scenarios.md is the reference). Validation happens once, in
:func:`load_scenario`/:func:`parse_scenario`; nothing downstream re-checks raw dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from harness.errors import ScenarioError
from harness.variants import BUNDLED

__all__ = [
    "API",
    "ClientSpec",
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
    "TruncateStream",
    "load_scenario",
    "parse_scenario",
]

API = Literal["chat.completions", "responses"]
CloseMode = Literal["fin", "rst", "silent"]
Expectation = Literal["pass", "fail", "observe"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Reply:
    """What the mock server answers: ``text`` split into ``chunks`` SSE deltas."""

    text: str = "pong"
    chunks: int = 3
    chunk_delay_ms: float = 0


@dataclass(frozen=True)
class Keepalive:
    """Idle keep-alive reaping: close a connection idle ``idle_timeout_ms`` (None: never)."""

    idle_timeout_ms: float | None = None
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

    status: int = 500
    retry_after_s: float | None = None
    calls: tuple[int, ...] | None = None
    kind: Literal["http_error"] = "http_error"


@dataclass(frozen=True)
class Stall:
    """Wait ``ms`` before the first response byte or between stream chunks."""

    ms: float = 1000
    at: Literal["first_byte", "between_chunks"] = "first_byte"
    calls: tuple[int, ...] | None = None
    kind: Literal["stall"] = "stall"


@dataclass(frozen=True)
class TruncateStream:
    """End a stream after ``after_chunks`` chunks, without its final event, and close."""

    after_chunks: int = 1
    calls: tuple[int, ...] | None = None
    kind: Literal["truncate_stream"] = "truncate_stream"


Fault = ResetOnReuse | HttpError | Stall | TruncateStream


@dataclass(frozen=True)
class ServerSpec:
    """The ``server:`` section: how the mock provider behaves."""

    api: API = "chat.completions"
    reply: Reply = field(default_factory=Reply)
    latency_ms: float = 0
    keepalive: Keepalive = field(default_factory=Keepalive)
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True)
class ClientSpec:
    """The ``client:`` section: extra OpenAI kwargs, whether request clients are closed, and
    the client kind the scenario requires (``any``: whatever the factory returns)."""

    kwargs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    close_request_clients: bool = True
    kind: Literal["any", "sync", "async"] = "any"


@dataclass(frozen=True)
class SessionSpec:
    """The ``session:`` section: the shape of the gateway's traffic."""

    turns: int = 10
    calls_per_turn: int = 1
    idle_between_turns_ms: float = 0
    stream: bool = False
    concurrency: int = 1
    abandon_streams: bool = False
    gc: Literal["off", "auto"] = "off"


@dataclass(frozen=True)
class Expectations:
    """The ``expect:`` section: thresholds a healthy client stays within (None: unchecked)."""

    errors: int | None = 0
    retries: int | None = None
    close_wait_peak: int | None = None
    close_wait_growth: int | None = None
    close_wait_after_close: int | None = None
    close_wait_after_gc: int | None = None
    connections: int | None = None
    p95_latency_ms: float | None = None


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
        ones are only observed.
        """
        if self.variants:
            return self.variants
        return MappingProxyType(
            {name: ("pass" if fixed else "observe") for name, fixed in BUNDLED.items()}
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain-data copy (JSON-ready) of the validated scenario."""
        plain = replace(
            self,
            client=replace(self.client, kwargs=dict(self.client.kwargs)),
            variants=dict(self.variants),
        )
        data: dict[str, Any] = json.loads(json.dumps(asdict(plain)))  # tuples -> lists
        return data


# --- loading ---------------------------------------------------------------------------

_CLIENT_KWARGS = ("max_retries", "timeout")
_FAULT_KINDS = ("reset_on_reuse", "http_error", "stall", "truncate_stream")


class _Section:
    """A YAML mapping node being validated; tracks which keys were read."""

    def __init__(self, ctx: _Context, node: yaml.Node, key: str) -> None:
        self.ctx = ctx
        self.key = key
        self.line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            raise ctx.error(node, key, f"must be a mapping, got {_kind(node)}")
        self.items: dict[str, yaml.Node] = {}
        self.key_lines: dict[str, int] = {}
        for knode, vnode in node.value:
            name = ctx.scalar(knode, key)
            if not isinstance(name, str):
                raise ctx.error(knode, key, f"keys must be strings, got {name!r}")
            if name in self.items:
                raise ctx.error(knode, self.sub(name), "duplicate key")
            self.items[name] = vnode
            self.key_lines[name] = knode.start_mark.line + 1

    def sub(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def finish(self, allowed: tuple[str, ...]) -> None:
        for name, line in self.key_lines.items():
            if name not in allowed:
                raise ScenarioError(
                    self.ctx.path,
                    line,
                    self.sub(name),
                    f"unknown key; allowed here: {', '.join(allowed)}",
                )

    def node(self, name: str) -> yaml.Node | None:
        return self.items.get(name)

    def section(self, name: str) -> _Section | None:
        node = self.items.get(name)
        if node is None or _is_null(node):
            return None
        return _Section(self.ctx, node, self.sub(name))

    def value(self, name: str) -> Any:
        node = self.items.get(name)
        return None if node is None else self.ctx.scalar(node, self.sub(name))

    def number(
        self,
        name: str,
        default: float,
        *,
        lo: float = 0,
        hi: float = math.inf,
        integer: bool = False,
    ) -> Any:
        node = self.items.get(name)
        if node is None:
            return default
        value = self.ctx.scalar(node, self.sub(name))
        want = "an integer" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise self.ctx.error(node, self.sub(name), f"must be {want}, got {value!r}")
        if not lo <= value <= hi or (isinstance(value, float) and math.isnan(value)):
            bound = f"{lo:g}..{hi:g}" if hi != math.inf else f">= {lo:g}"
            raise self.ctx.error(
                node, self.sub(name), f"{value!r} is out of range; allowed {bound}"
            )
        return value

    def optional_number(self, name: str, default: float | None, **kw: Any) -> Any:
        node = self.items.get(name)
        if node is not None and _is_null(node):
            return None
        return self.number(name, default, **kw)  # type: ignore[arg-type]

    def boolean(self, name: str, default: bool) -> bool:
        node = self.items.get(name)
        if node is None:
            return default
        value = self.ctx.scalar(node, self.sub(name))
        if not isinstance(value, bool):
            raise self.ctx.error(node, self.sub(name), f"must be true or false, got {value!r}")
        return value

    def string(self, name: str, default: str) -> str:
        node = self.items.get(name)
        if node is None:
            return default
        value = self.ctx.scalar(node, self.sub(name))
        if not isinstance(value, str):
            raise self.ctx.error(node, self.sub(name), f"must be a string, got {value!r}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> Any:
        node = self.items.get(name)
        if node is None:
            return default
        value = self.ctx.scalar(node, self.sub(name))
        if value is False and "off" in allowed:  # YAML 1.1 reads a bare `off` as false
            value = "off"
        if value not in allowed:
            raise self.ctx.error(
                node, self.sub(name), f"{value!r} is not allowed; use one of: {', '.join(allowed)}"
            )
        return value


class _Context:
    def __init__(self, path: str, loader: yaml.SafeLoader) -> None:
        self.path = path
        self.loader = loader

    def error(self, node: yaml.Node, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.path, node.start_mark.line + 1, key, message)

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, key, f"must be a single value, got {_kind(node)}")
        return self.loader.construct_object(node, deep=True)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate one scenario file; raise :class:`ScenarioError` on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), 0, "", f"cannot read the file: {exc}") from exc
    return parse_scenario(text, path=str(path), default_name=path.stem)


def parse_scenario(
    text: str, *, path: str = "<string>", default_name: str = "scenario"
) -> Scenario:
    """Validate scenario YAML ``text``; ``path`` only labels error messages."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ScenarioError(path, line, "", f"not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(path, 0, "", f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if root is None:
        raise ScenarioError(path, 1, "version", "the file is empty; it needs at least `version: 1`")
    top = _Section(_Context(path, loader), root, "")
    return _build(top, path, default_name)


def _build(top: _Section, path: str, default_name: str) -> Scenario:
    top.finish(
        ("version", "name", "description", "server", "client", "session", "expect", "variants")
    )
    version_node = top.node("version")
    if version_node is None:
        raise ScenarioError(path, top.line, "version", "missing; add `version: 1` at the top")
    if top.value("version") != 1:
        raise top.ctx.error(
            version_node, "version", f"{top.value('version')!r} is not supported; use 1"
        )
    return Scenario(
        name=top.string("name", default_name) or default_name,
        description=top.string("description", ""),
        server=_server(top.section("server")),
        client=_client(top.section("client")),
        session=_session(top.section("session")),
        expect=_expect(top.section("expect")),
        variants=_variants(top),
        path=path,
    )


def _server(sec: _Section | None) -> ServerSpec:
    if sec is None:
        return ServerSpec()
    sec.finish(("api", "reply", "latency_ms", "keepalive", "faults"))
    return ServerSpec(
        api=sec.choice("api", "chat.completions", ("chat.completions", "responses")),
        reply=_reply(sec.section("reply")),
        latency_ms=sec.number("latency_ms", 0, hi=600_000),
        keepalive=_keepalive(sec.section("keepalive")),
        faults=_faults(sec),
    )


def _reply(sec: _Section | None) -> Reply:
    if sec is None:
        return Reply()
    sec.finish(("text", "chunks", "chunk_delay_ms"))
    return Reply(
        text=sec.string("text", "pong"),
        chunks=sec.number("chunks", 3, lo=1, hi=100_000, integer=True),
        chunk_delay_ms=sec.number("chunk_delay_ms", 0, hi=600_000),
    )


def _keepalive(sec: _Section | None) -> Keepalive:
    if sec is None:
        return Keepalive()
    sec.finish(("idle_timeout_ms", "close"))
    return Keepalive(
        idle_timeout_ms=sec.optional_number("idle_timeout_ms", None, lo=1, hi=3_600_000),
        close=sec.choice("close", "fin", ("fin", "rst", "silent")),
    )


def _faults(sec: _Section) -> tuple[Fault, ...]:
    node = sec.node("faults")
    if node is None or _is_null(node):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise sec.ctx.error(node, "server.faults", f"must be a list, got {_kind(node)}")
    return tuple(
        _fault(_Section(sec.ctx, item, f"server.faults[{i}]")) for i, item in enumerate(node.value)
    )


def _fault(sec: _Section) -> Fault:
    kind_node = sec.node("kind")
    if kind_node is None:
        raise ScenarioError(
            sec.ctx.path,
            sec.line,
            sec.sub("kind"),
            f"missing; use one of: {', '.join(_FAULT_KINDS)}",
        )
    kind = sec.choice("kind", "", _FAULT_KINDS)
    calls = _calls(sec)
    if kind == "reset_on_reuse":
        sec.finish(("kind", "calls", "mode"))
        return ResetOnReuse(mode=sec.choice("mode", "rst", ("fin", "rst")), calls=calls)
    if kind == "http_error":
        sec.finish(("kind", "calls", "status", "retry_after_s"))
        return HttpError(
            status=sec.number("status", 500, lo=400, hi=599, integer=True),
            retry_after_s=sec.optional_number("retry_after_s", None, hi=3600),
            calls=calls,
        )
    if kind == "stall":
        sec.finish(("kind", "calls", "ms", "at"))
        return Stall(
            ms=sec.number("ms", 1000, hi=600_000),
            at=sec.choice("at", "first_byte", ("first_byte", "between_chunks")),
            calls=calls,
        )
    sec.finish(("kind", "calls", "after_chunks"))
    return TruncateStream(
        after_chunks=sec.number("after_chunks", 1, hi=100_000, integer=True), calls=calls
    )


def _calls(sec: _Section) -> tuple[int, ...] | None:
    node = sec.node("calls")
    if node is None:
        return None
    key = sec.sub("calls")
    if isinstance(node, yaml.ScalarNode) and sec.ctx.scalar(node, key) == "all":
        return None
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise sec.ctx.error(node, key, "must be a non-empty list of 1-based call numbers, or `all`")
    calls = []
    for item in node.value:
        value = sec.ctx.scalar(item, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise sec.ctx.error(item, key, f"{value!r} is not a call number; use integers >= 1")
        calls.append(value)
    return tuple(sorted(set(calls)))


def _client(sec: _Section | None) -> ClientSpec:
    if sec is None:
        return ClientSpec()
    sec.finish(("kwargs", "close_request_clients", "kind"))
    return ClientSpec(
        kwargs=_client_kwargs(sec.section("kwargs")),
        close_request_clients=sec.boolean("close_request_clients", True),
        kind=sec.choice("kind", "any", ("any", "sync", "async")),
    )


def _client_kwargs(sec: _Section | None) -> Mapping[str, Any]:
    if sec is None:
        return _EMPTY
    sec.finish(_CLIENT_KWARGS)
    kwargs: dict[str, Any] = {}
    if "max_retries" in sec.items:
        kwargs["max_retries"] = sec.number("max_retries", 2, hi=100, integer=True)
    if "timeout" in sec.items:
        kwargs["timeout"] = float(sec.number("timeout", 600, lo=0.001, hi=3600))
    return MappingProxyType(kwargs)


def _session(sec: _Section | None) -> SessionSpec:
    if sec is None:
        return SessionSpec()
    sec.finish(
        (
            "turns",
            "calls_per_turn",
            "idle_between_turns_ms",
            "stream",
            "concurrency",
            "abandon_streams",
            "gc",
        )
    )
    session = SessionSpec(
        turns=sec.number("turns", 10, lo=1, hi=100_000, integer=True),
        calls_per_turn=sec.number("calls_per_turn", 1, lo=1, hi=1000, integer=True),
        idle_between_turns_ms=sec.number("idle_between_turns_ms", 0, hi=3_600_000),
        stream=sec.boolean("stream", False),
        concurrency=sec.number("concurrency", 1, lo=1, hi=256, integer=True),
        abandon_streams=sec.boolean("abandon_streams", False),
        gc=sec.choice("gc", "off", ("off", "auto")),
    )
    if session.abandon_streams and not session.stream:
        raise ScenarioError(
            sec.ctx.path,
            sec.key_lines["abandon_streams"],
            "session.abandon_streams",
            "needs `stream: true`; only a stream can be abandoned",
        )
    return session


def _expect(sec: _Section | None) -> Expectations:
    if sec is None:
        return Expectations()
    names = (
        "errors",
        "retries",
        "close_wait_peak",
        "close_wait_growth",
        "close_wait_after_close",
        "close_wait_after_gc",
        "connections",
    )
    sec.finish((*names, "p95_latency_ms"))
    values: dict[str, Any] = {
        name: sec.optional_number(name, getattr(Expectations(), name), integer=True)
        for name in names
    }
    values["p95_latency_ms"] = sec.optional_number("p95_latency_ms", None)
    return Expectations(**values)


def _variants(top: _Section) -> Mapping[str, Expectation]:
    sec = top.section("variants")
    if sec is None:
        return _EMPTY
    out: dict[str, Expectation] = {}
    for name in sec.items:
        if ":" not in name and name not in BUNDLED:
            raise ScenarioError(
                sec.ctx.path,
                sec.key_lines[name],
                sec.sub(name),
                f"unknown variant; use one of: {', '.join(BUNDLED)}, or a factory spec"
                " `module:function` / `path/to/file.py:function`",
            )
        out[name] = sec.choice(name, "pass", ("pass", "fail", "observe"))
    if not out:
        raise ScenarioError(
            sec.ctx.path, sec.line, "variants", "is empty; list at least one variant"
        )
    return MappingProxyType(out)
