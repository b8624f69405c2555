"""The byte-template cache: each (request, reply) pair's answer is built once, then copied.

Theory of operation. Building an answer means building and encoding one dict per frame:
about 85 us for a 16-chunk stream, more than the rest of a request. Only ``ident`` and
``created`` change from call to call, so the builders of :mod:`.bodies` run once per pair
with sentinel values, and every later answer is two byte replacements over the result.

One lookup: :func:`template_for` returns the pair's :class:`Template` (an LRU cache of 256
pairs: a scenario has one reply and a handful of request shapes). The caller then fills the
shape it sends, each built from the sentinels on first use:

- :meth:`Template.payload`: the complete answer;
- :meth:`Template.stream`: the SSE frames, for a stream the fault layer pauses between or cuts;
- :meth:`Template.stream_bytes`: the frames joined, for a stream sent whole (one replacement
  over the joined bytes instead of one per frame: the common streamed case).

The sentinels cannot collide with anything else in a template: the only free text there comes
from the reply, the model and the tool name, and a pair whose free text contains a sentinel
gets an uncached template that builds every answer from scratch (same interface, same bytes).
A template is shared by every server in the process; filling it in lazily is a benign race
(two threads build the same bytes).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Final

from harness.mockserver.bodies import build_payload, build_stream
from harness.mockserver.payload import Payload, StreamPlan, dumps
from harness.mockserver.request import ApiRequest
from harness.schema import Reply

__all__ = ["Template", "template_for"]

_IDENT_SENTINEL: Final = "\x01ident\x01"  # JSON-encodes to an escape no real ident has
_CREATED_SENTINEL: Final = 7_700_000_000_000_000_007
_IDENT_BYTES: Final = json.dumps(_IDENT_SENTINEL)[1:-1].encode()
_CREATED_BYTES: Final = str(_CREATED_SENTINEL).encode()
_SENTINEL_TEXTS: Final = (_IDENT_SENTINEL, _IDENT_BYTES.decode(), _CREATED_BYTES.decode())


@functools.lru_cache(maxsize=256)
def template_for(req: ApiRequest, reply: Reply) -> Template:
    """The answers to ``req`` with ``reply``, ready to fill with each call's ident and time."""
    free_text = (reply.text, req.model, req.tool or "")
    if any(sentinel in text for text in free_text for sentinel in _SENTINEL_TEXTS):
        return _Uncached(req, reply)
    return Template(req, reply)


class Template:
    """One pair's answers, built with sentinels on first use and filled per call.

    ``ident`` is the call's unique suffix (every id in the answer derives from it), ``created``
    the Unix time the answer reports."""

    __slots__ = ("_joined", "_payload", "_plan", "reply", "req")

    def __init__(self, req: ApiRequest, reply: Reply) -> None:
        self.req = req
        self.reply = reply
        self._payload: Payload | None = None
        self._plan: StreamPlan | None = None
        self._joined: bytes | None = None

    def payload(self, *, ident: str, created: int) -> Payload:
        """The complete (non-streamed) answer."""
        template = self._payload
        if template is None:
            template = self._payload = build_payload(
                self.req, self.reply, _IDENT_SENTINEL, _CREATED_SENTINEL
            )
        return Payload(template.status, template.headers, _filler(ident, created)(template.body))

    def stream(self, *, ident: str, created: int) -> StreamPlan:
        """The streamed answer as SSE frames (head, chunks, tail)."""
        fill = _filler(ident, created)
        plan = self._sentinel_plan()
        return StreamPlan(
            tuple(map(fill, plan.head)), tuple(map(fill, plan.chunks)), tuple(map(fill, plan.tail))
        )

    def stream_bytes(self, *, ident: str, created: int) -> bytes:
        """The frames of :meth:`stream` joined: the whole stream when nothing pauses it."""
        joined = self._joined
        if joined is None:
            joined = self._joined = self._sentinel_plan().joined()
        return _filler(ident, created)(joined)

    def _sentinel_plan(self) -> StreamPlan:
        plan = self._plan
        if plan is None:
            plan = self._plan = build_stream(
                self.req, self.reply, _IDENT_SENTINEL, _CREATED_SENTINEL
            )
        return plan


class _Uncached(Template):
    """A pair whose free text holds a sentinel: every answer is built from scratch."""

    __slots__ = ()

    def payload(self, *, ident: str, created: int) -> Payload:
        return build_payload(self.req, self.reply, ident, created)

    def stream(self, *, ident: str, created: int) -> StreamPlan:
        return build_stream(self.req, self.reply, ident, created)

    def stream_bytes(self, *, ident: str, created: int) -> bytes:
        return build_stream(self.req, self.reply, ident, created).joined()


def _filler(ident: str, created: int) -> Callable[[bytes], bytes]:
    # The server's idents are ASCII letters and digits, which JSON leaves as they are.
    ident_bytes = ident.encode() if ident.isascii() and ident.isalnum() else dumps(ident)[1:-1]
    created_bytes = str(created).encode()

    def fill(template: bytes) -> bytes:
        return template.replace(_IDENT_BYTES, ident_bytes).replace(_CREATED_BYTES, created_bytes)

    return fill
