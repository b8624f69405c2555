"""What a complete request is answered with: OpenAI's answer shaped by the call's fault.

No sockets: :class:`Responder` is the ``respond`` a :class:`~harness.mockserver.machine.
ConnectionMachine` calls for each complete request of one connection. It routes the request
(:mod:`.routing`), reads an API request's body (:mod:`.request`), numbers API calls and picks
their fault (:class:`~.faults.CallLedger`), fills the answer from the pair's cached template
(:mod:`.templates`), and returns an :class:`Answer`: the :class:`~harness.mockserver.wire.Reply`
to play and the call to record when its last byte leaves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import h11

from harness.mockserver import wire
from harness.mockserver.bodies import models_payload
from harness.mockserver.faults import CallLedger, Ticket
from harness.mockserver.payload import Payload, Reject, error_payload, json_payload
from harness.mockserver.request import ApiRequest, parse_api_request
from harness.mockserver.routing import Endpoint, route
from harness.mockserver.templates import template_for
from harness.schema import HttpError, ResetOnReuse, ServerSpec, Stall, TruncateStream

__all__ = ["Answer", "Responder"]

log = logging.getLogger("harness.mockserver")

_ERROR_TYPES = {429: ("requests", "rate_limit_exceeded")}


class Responder:
    """Answers the requests of socket serial ``serial``; counts its API calls for reuse."""

    def __init__(self, spec: ServerSpec, ledger: CallLedger, serial: int) -> None:
        self.spec = spec
        self.ledger = ledger
        self.serial = serial
        self.api_requests = 0

    def __call__(self, request: h11.Request, body: bytes, framing: wire.Framing) -> Answer:
        """What to send for a complete request (decided at once; the machine plays it)."""
        target = request.target.decode("latin-1")
        endpoint = route(request.method.decode("latin-1"), target)
        if isinstance(endpoint, Reject):
            payload = error_payload(endpoint)
        elif endpoint == "stats":
            payload = json_payload(200, self.ledger.snapshot().to_dict())
        elif endpoint == "reset":
            self.ledger.reset()
            payload = json_payload(200, {"ok": True})
        else:
            return self._api(endpoint, request, target, body, framing)
        return Answer(wire.payload_reply(payload, framing), None, self.ledger)

    def _api(
        self,
        endpoint: Endpoint,
        request: h11.Request,
        target: str,
        body: bytes,
        framing: wire.Framing,
    ) -> Answer:
        parsed: ApiRequest | Reject | None = None
        if endpoint == "chat.completions" or endpoint == "responses":
            parsed = parse_api_request(endpoint, body)
            if isinstance(parsed, Reject):
                log.info(
                    "mock server: connection %d: answered 400: %s", self.serial, parsed.message
                )
        ticket = self.ledger.begin(
            socket=self.serial,
            path=target.split("?", 1)[0],
            stream=isinstance(parsed, ApiRequest) and parsed.stream,
            retry_count=_retry_count(request.headers),
            session=_session_id(request.headers),
            reused=self.api_requests > 0,
            eligible=not isinstance(parsed, Reject),
        )
        self.api_requests += 1
        return Answer(_api_reply(self.spec, ticket, parsed, framing), ticket, self.ledger)


class Answer:
    """A decided reply and the call it answers (None: not an API call), until recorded."""

    __slots__ = ("ledger", "recorded", "reply", "ticket")

    def __init__(self, reply: wire.Reply, ticket: Ticket | None, ledger: CallLedger) -> None:
        self.reply = reply
        self.ticket = ticket
        self.ledger = ledger
        self.recorded = False

    def record(self, status: int) -> None:
        """Record the call's outcome (once). The machine calls it before the last byte of
        the reply is written, so a client that has its answer also finds it in ``stats()``."""
        if self.ticket is not None and not self.recorded:
            self.recorded = True
            self.ledger.finish(self.ticket, status)


def _api_reply(
    spec: ServerSpec, ticket: Ticket, parsed: ApiRequest | Reject | None, framing: wire.Framing
) -> wire.Reply:
    """The answer to API call ``ticket``: the fault layer's choice applied to the body's."""
    fault = ticket.fault
    if isinstance(fault, ResetOnReuse):
        return wire.reply_without_answer(fault.mode)
    delay_ms = spec.latency_ms
    if isinstance(fault, Stall) and fault.at == "first_byte":
        delay_ms += fault.ms
    delay_s = delay_ms / 1000
    if isinstance(parsed, Reject):
        return wire.payload_reply(error_payload(parsed), framing, delay_s=delay_s)
    if isinstance(fault, HttpError):
        return wire.payload_reply(_http_error(fault), framing, delay_s=delay_s)
    if parsed is None:
        return wire.payload_reply(models_payload(), framing, delay_s=delay_s)
    stall_s = fault.ms / 1000 if isinstance(fault, Stall) and fault.at != "first_byte" else 0.0
    ident, created = f"mock{ticket.index:06d}", int(time.time())
    template = template_for(parsed, spec.reply)
    if not parsed.stream:
        payload = template.payload(ident=ident, created=created)
        return wire.payload_reply(payload, framing, delay_s=delay_s, pause_s=stall_s)
    cut = fault.after_chunks if isinstance(fault, TruncateStream) else None
    if not stall_s and cut is None and (not spec.reply.chunk_delay_ms or spec.reply.chunks <= 1):
        data = template.stream_bytes(ident=ident, created=created)
        return wire.whole_stream_reply(data, framing, delay_s=delay_s)
    return wire.stream_reply(
        template.stream(ident=ident, created=created),
        framing,
        delay_s=delay_s,
        chunk_delay_s=spec.reply.chunk_delay_ms / 1000,
        stall_s=stall_s,
        cut=cut,
    )


def _retry_count(headers: Iterable[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"x-stainless-retry-count":
            try:
                return max(0, int(value))
            except ValueError:
                return 0  # not the SDK's header; treat it as a first attempt
    return 0


def _session_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The ``x-session-id`` header a timeline's gateway sends ("" when absent), kept short."""
    for name, value in headers:
        if name == b"x-session-id":
            return value[:64].decode("ascii", "replace")
    return ""


def _http_error(fault: HttpError) -> Payload:
    kind, code = _ERROR_TYPES.get(
        fault.status, ("server_error" if fault.status >= 500 else "invalid_request_error", None)
    )
    reject = Reject(fault.status, f"Mock server fault: HTTP {fault.status}.", type=kind, code=code)
    return error_payload(reject, retry_after_s=fault.retry_after_s)
