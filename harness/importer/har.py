"""HAR traces (HTTP Archive 1.2, as browsers' and proxies' "export HAR" write them).

Every entry whose request goes to a chat completions or responses endpoint (the URL's path
ends in ``/chat/completions`` or ``/responses``) is one call; other entries are skipped.
``startedDateTime`` is its start, ``time`` (ms) its duration, ``response.status`` its status
(0: no response; ``response._error``, as Chromium writes it, its error), the request body's
``"stream": true`` whether it streamed, and the ``x-session-id`` request header its session
(without one, every call is in one session).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from harness.errors import TraceError
from harness.importer.model import Refused, Trace, TraceCall, as_number, as_text, parse_iso

__all__ = ["ENDPOINTS", "SESSION_HEADER", "read_har"]

ENDPOINTS: Final = ("/chat/completions", "/responses")
SESSION_HEADER: Final = "x-session-id"


def read_har(path: str, data: Mapping[str, Any]) -> Trace:
    """The LLM calls among ``data``'s entries; a bad entry raises :class:`TraceError`."""
    log = data.get("log")
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise TraceError(path, "log", "a HAR file holds `log.entries`, a list; this one has none")
    calls = []
    for index, entry in enumerate(entries):
        where = f"log.entries[{index}]"
        try:
            call = _call(entry, where)
        except Refused as exc:
            raise TraceError(path, where, str(exc)) from None
        if call is not None:
            calls.append(call)
    return Trace(path, "har", tuple(calls))


def _call(entry: Any, where: str) -> TraceCall | None:
    if not isinstance(entry, dict):
        raise Refused("an entry is an object with `startedDateTime`, `time`, `request`")
    request = _object(entry, "request")
    url = as_text(request, "url", "")
    if not urllib.parse.urlsplit(url).path.rstrip("/").endswith(ENDPOINTS):
        return None
    response = _object(entry, "response")
    started = entry.get("startedDateTime")
    if not isinstance(started, str):
        raise Refused("`startedDateTime` is missing; HAR gives it as ISO-8601 text")
    status = as_number(response, "status", default=0)
    return TraceCall(
        start_s=parse_iso(started, "startedDateTime"),
        duration_ms=as_number(entry, "time"),
        session=_header(request, SESSION_HEADER) or "1",
        stream=_streams(request),
        status=int(status) if status.is_integer() and status <= 599 else 0,
        error=as_text(response, "_error", ""),
        where=where,
    )


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise Refused(f"`{key}` is missing or not an object")
    return value


def _header(request: Mapping[str, Any], name: str) -> str:
    for header in request.get("headers") or ():
        if isinstance(header, dict) and str(header.get("name", "")).lower() == name:
            return str(header.get("value", ""))
    return ""


def _streams(request: Mapping[str, Any]) -> bool:
    """The request body's ``stream`` flag (false when the body is absent or not JSON)."""
    post = request.get("postData")
    text = post.get("text") if isinstance(post, dict) else None
    if not isinstance(text, str):
        return False
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(body, dict) and body.get("stream") is True
