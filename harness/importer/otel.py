"""OpenTelemetry traces exported as OTLP JSON, read by the GenAI semantic conventions.

The file is one ``{"resourceSpans": [...]}`` document (an OTLP/HTTP JSON body), or one such
document per line (the Collector's file exporter). Every span under
``resourceSpans[].scopeSpans[].spans[]`` whose ``gen_ai.operation.name`` is an inference
operation (``chat``, ``text_completion``, ``generate_content``) is one call, unless its kind
is SERVER (a proxy's side of a call the conventions record as CLIENT); other spans
(``embeddings``, ``execute_tool``, ``invoke_agent``, HTTP spans) are skipped.
``startTimeUnixNano``/``endTimeUnixNano`` give its start and duration,
``gen_ai.conversation.id`` its session (absent: one session), ``gen_ai.request.stream``
whether it streamed, ``http.response.status_code`` its status, and ``error.type`` (or an error
span status, ``code: 2``) its error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from harness.errors import TraceError
from harness.importer.model import Refused, Trace, TraceCall, as_number

__all__ = ["INFERENCE", "read_otel"]

INFERENCE: Final = ("chat", "text_completion", "generate_content")
_ERROR: Final = (2, "STATUS_CODE_ERROR")
_SERVER: Final = (2, "SPAN_KIND_SERVER")
_VALUE_KINDS: Final = ("stringValue", "boolValue", "intValue", "doubleValue")


def read_otel(path: str, documents: list[tuple[int, Any]]) -> Trace:
    """The inference spans of ``documents`` (line, parsed JSON); a bad span raises
    :class:`TraceError` naming its line (when there are several) and its path in the file."""
    calls = []
    for line, document in documents:
        for where, span in _spans(path, line, document):
            try:
                call = _call(span, where)
            except Refused as exc:
                raise TraceError(path, where, str(exc)) from None
            if call is not None:
                calls.append(call)
    return Trace(path, "otel", tuple(calls))


def _spans(path: str, line: int, document: Any) -> Iterator[tuple[str, Any]]:
    at = f"line {line} " if line else ""
    resources = document.get("resourceSpans") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        message = "OTLP JSON holds `resourceSpans`, a list; this has none (check --format)"
        raise TraceError(path, at.strip() or "resourceSpans", message)
    for r, resource in enumerate(resources):
        for s, scope in enumerate(_list(resource, "scopeSpans")):
            for k, span in enumerate(_list(scope, "spans")):
                yield f"{at}resourceSpans[{r}].scopeSpans[{s}].spans[{k}]", span


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, list) else []


def _call(span: Any, where: str) -> TraceCall | None:
    if not isinstance(span, dict):
        raise Refused("a span is an object with `startTimeUnixNano`, `endTimeUnixNano`")
    attrs = _attributes(span)
    if attrs.get("gen_ai.operation.name") not in INFERENCE or span.get("kind") in _SERVER:
        return None  # not an inference call, or a proxy's own view of one (not the client's)
    start_ns, end_ns = _nanos(span, "startTimeUnixNano"), _nanos(span, "endTimeUnixNano")
    if end_ns < start_ns:
        raise Refused("`endTimeUnixNano` is before `startTimeUnixNano`")
    raw = span.get("status")
    status: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    error = str(attrs.get("error.type") or "")
    if not error and status.get("code") in _ERROR:
        error = str(status.get("message") or "span status ERROR")
    code = as_number(attrs, "http.response.status_code", default=0 if error else 200)
    return TraceCall(
        start_s=start_ns / 1e9,
        duration_ms=(end_ns - start_ns) / 1e6,
        session=str(attrs.get("gen_ai.conversation.id") or "1"),
        stream=attrs.get("gen_ai.request.stream") is True,
        status=int(code) if code.is_integer() and code <= 599 else 0,
        error=error,
        where=where,
    )


def _nanos(span: Mapping[str, Any], key: str) -> int:
    """A ``*UnixNano`` field, a decimal string in OTLP JSON (a number is accepted too)."""
    value = span.get(key)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise Refused(f"`{key}` is {value!r}; OTLP JSON gives nanoseconds as a decimal string")


def _attributes(span: Mapping[str, Any]) -> dict[str, Any]:
    """``[{key, value: {stringValue: ...}}]`` as a plain mapping (other value kinds: None)."""
    out: dict[str, Any] = {}
    for attr in span.get("attributes") or ():
        if not isinstance(attr, dict) or not isinstance(attr.get("value"), dict):
            continue
        value = attr["value"]
        kind = next((k for k in _VALUE_KINDS if k in value), None)
        out[str(attr.get("key"))] = None if kind is None else value[kind]
    return out
