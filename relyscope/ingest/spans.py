"""Spans from span logs: OTLP JSON export (resourceSpans/scopeSpans/spans, key/value attribute
lists) and the flat form (a list or JSONL of spans with an `attributes` dict, as Arize Phoenix
exports them, flat dotted keys or nested). Shared by the OpenInference and OTel GenAI readers.

Ids are lower-case hex. OTLP/JSON says hex, but protobuf's own JSON printer writes the id bytes
as base64; both are accepted (the lengths tell them apart).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relyscope.case import CaseError
from relyscope.ingest.jsonio import SHAPE_ERRORS, JsonDoc, dicts, first
from relyscope.ingest.records import Conversation, LogRecord, build_case

_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F]+$")


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: int
    end: int
    attributes: dict[str, Any]
    location: str
    source: str = ""
    status_error: bool = False
    order: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SpanError:
    """A document or span of a span log that could not be read."""

    location: str
    message: str
    field: str = ""


def iter_spans(docs: Iterable[JsonDoc]) -> Iterator[Span | SpanError]:
    """Every span of the documents, in order, and an error for each unreadable piece."""
    order = 0
    for doc in docs:
        if doc.error is not None:
            yield SpanError(doc.location, doc.error)
            continue
        for item in spans_of_doc(doc):
            if isinstance(item, Span):
                item.source = doc.location
                item.order = order
                order += 1
            yield item


def spans_of_doc(doc: JsonDoc) -> Iterator[Span | SpanError]:
    value = doc.value
    if isinstance(value, dict) and _resource_spans(value) is not None:
        yield from _otlp(value, doc.location)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict) and _resource_spans(item) is not None:
                yield from _otlp(item, f"{doc.location}[{index}]")
            else:
                yield _flat(item, f"{doc.location}[{index}]")
    elif isinstance(value, dict) and isinstance(value.get("spans"), list):
        for index, item in enumerate(value["spans"]):
            yield _flat(item, f"{doc.location}.spans[{index}]")
    else:
        yield _flat(value, doc.location)


def is_otlp(value: Any) -> bool:
    return isinstance(value, dict) and _resource_spans(value) is not None


def _resource_spans(value: dict[str, Any]) -> list[Any] | None:
    found = first(value, "resourceSpans", "resource_spans")
    return found if isinstance(found, list) else None


# -- OTLP JSON -------------------------------------------------------------------------------


def _otlp(request: dict[str, Any], location: str) -> Iterator[Span | SpanError]:
    for r_index, resource in enumerate(dicts(_resource_spans(request))):
        scopes = first(resource, "scopeSpans", "scope_spans", "instrumentationLibrarySpans")
        for s_index, scope in enumerate(dicts(scopes)):
            for index, raw in enumerate(dicts(scope.get("spans"))):
                where = f"{location}:resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                try:
                    yield _otlp_span(raw, where)
                except SHAPE_ERRORS as err:
                    yield SpanError(where, f"unreadable span ({type(err).__name__}: {err})")


def _otlp_span(raw: dict[str, Any], where: str) -> Span:
    trace_id = span_id_hex(first(raw, "traceId", "trace_id"), 16)
    span_id = span_id_hex(first(raw, "spanId", "span_id"), 8)
    if not trace_id or not span_id:
        raise ValueError("no traceId/spanId")
    parent = span_id_hex(first(raw, "parentSpanId", "parent_span_id"), 8)
    attributes = {kv["key"]: any_value(kv.get("value")) for kv in raw.get("attributes") or []}
    status = raw.get("status") or {}
    events = [{"name": e.get("name"),
               "attributes": {kv["key"]: any_value(kv.get("value"))
                              for kv in e.get("attributes") or []}}
              for e in raw.get("events") or []]
    return Span(trace_id=trace_id, span_id=span_id, parent_id=parent or None,
                name=raw.get("name", ""),
                start=int(first(raw, "startTimeUnixNano", "start_time_unix_nano") or 0),
                end=int(first(raw, "endTimeUnixNano", "end_time_unix_nano") or 0),
                attributes=attributes, location=f"{where} (span {span_id})",
                status_error=status.get("code") in (2, "STATUS_CODE_ERROR", "ERROR"),
                events=events)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as a Python value (kvlists become dicts, arrays lists)."""
    if not isinstance(value, dict):
        return value
    for key, convert in (("stringValue", str), ("string_value", str), ("boolValue", bool),
                         ("bool_value", bool), ("intValue", int), ("int_value", int),
                         ("doubleValue", float), ("double_value", float)):
        if key in value:
            return convert(value[key])
    array = first(value, "arrayValue", "array_value")
    if array is not None:
        return [any_value(v) for v in array.get("values") or []]
    kvlist = first(value, "kvlistValue", "kvlist_value")
    if kvlist is not None:
        return {kv["key"]: any_value(kv.get("value")) for kv in kvlist.get("values") or []}
    blob = first(value, "bytesValue", "bytes_value")
    if blob is not None:
        return blob
    return None


def span_id_hex(value: Any, size: int) -> str:
    """A trace id (16 bytes) or span id (8 bytes) as lower-case hex, from hex or base64 text."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return f"{value:0{size * 2}x}"
    text = str(value)
    if len(text) in (size * 2, size * 2 + 2) and _HEX.match(text):
        return text.removeprefix("0x").lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
    return raw.hex() if len(raw) == size else text


# -- flat spans (Phoenix) ---------------------------------------------------------------------


def _flat(raw: Any, location: str) -> Span | SpanError:
    try:
        return _flat_span(raw, location)
    except SHAPE_ERRORS as err:
        return SpanError(location, f"unreadable span ({type(err).__name__}: {err})")


def _flat_span(raw: Any, location: str) -> Span | SpanError:
    if not isinstance(raw, dict):
        return SpanError(location, f"a span must be a JSON object, got {type(raw).__name__}")
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    trace_id = span_id_hex(first(context, "trace_id", "traceId")
                           or first(raw, "trace_id", "traceId", "context.trace_id"), 16)
    span_id = span_id_hex(first(context, "span_id", "spanId")
                          or first(raw, "span_id", "spanId", "context.span_id"), 8)
    if not span_id:
        return SpanError(location, "span without a span id", "context.span_id")
    if not trace_id:
        return SpanError(f"{location} (span {span_id})", "span without a trace id",
                         "context.trace_id")
    attributes = raw.get("attributes")
    if isinstance(attributes, dict):
        attributes = flatten_attributes(attributes)
    else:  # a dataframe row: columns "attributes.llm.input_messages", ...
        attributes = flatten_attributes({k.removeprefix("attributes."): v for k, v in raw.items()
                                         if k.startswith("attributes.")})
    kind = first(raw, "span_kind", "spanKind")
    if kind and "openinference.span.kind" not in attributes:
        attributes["openinference.span.kind"] = str(kind).upper()
    parent = span_id_hex(first(raw, "parent_id", "parentId", "parent_span_id", "parentSpanId"), 8)
    status = str(first(raw, "status_code", "statusCode") or "")
    return Span(trace_id=trace_id, span_id=span_id, parent_id=parent or None,
                name=str(raw.get("name", "")),
                start=_time_ns(first(raw, "start_time", "startTime", "startTimeUnixNano")),
                end=_time_ns(first(raw, "end_time", "endTime", "endTimeUnixNano")),
                attributes=attributes, location=f"{location} (span {span_id})",
                status_error=status.upper() in ("ERROR", "STATUS_CODE_ERROR"),
                events=list(raw.get("events") or []))


def flatten_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Nested attribute dicts to dotted keys (``llm.input_messages.0.message.role``).

    Lists of objects are indexed too, except under ``gen_ai.``, whose attributes hold structured
    JSON values by design (``gen_ai.input.messages`` is one value, a list of messages).
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and not prefix.startswith("gen_ai."):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
              and not prefix.startswith("gen_ai.")):
            for index, inner in enumerate(value):
                walk(f"{prefix}.{index}", inner)
        else:
            flat[prefix] = value

    walk("", attributes)
    return flat


def _time_ns(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0


# -- grouping ---------------------------------------------------------------------------------


def indexed(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Items of a flattened list attribute: ``prefix.<i>.<rest>`` -> [{rest: value}, ...] by i."""
    return [item for _, item in indexed_pairs(attributes, prefix)]


def indexed_pairs(attributes: dict[str, Any], prefix: str) -> list[tuple[int, dict[str, Any]]]:
    """Like `indexed`, with each item's index as logged (an item with no attribute is absent)."""
    items: dict[int, dict[str, Any]] = {}
    start = len(prefix) + 1
    for key, value in attributes.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, rest = key[start:].partition(".")
        if index.isdigit() and rest:
            items.setdefault(int(index), {})[rest] = value
    return [(i, items[i]) for i in sorted(items)]


def by_trace(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans grouped by trace id (in first-seen order), each trace sorted by start time."""
    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    for members in traces.values():
        members.sort(key=lambda s: (s.start, s.order))
    return traces


def trace_records(docs: Iterable[JsonDoc], fmt: str,
                  conversation_of_trace: Callable[[str, list[Span]], Conversation], *,
                  parse_arguments: bool = False) -> Iterator[LogRecord]:
    """One LogRecord per trace (after all documents are read: a trace may span many lines),
    preceded by one per unreadable line or span."""
    spans: list[Span] = []
    for item in iter_spans(docs):
        if isinstance(item, SpanError):
            yield LogRecord(item.location, item.location, fmt,
                            error=CaseError(item.field, item.message, record=item.location))
        else:
            spans.append(item)
    for trace_id, members in by_trace(spans).items():
        location = members[0].source
        try:
            case = build_case(conversation_of_trace(trace_id, members), fmt=fmt,
                              location=location, parse_arguments=parse_arguments)
        except CaseError as err:
            yield LogRecord(trace_id, location, fmt, error=err)
        except SHAPE_ERRORS as err:
            yield LogRecord(trace_id, location, fmt, error=CaseError(
                "", f"unreadable trace ({type(err).__name__}: {err})", record=trace_id))
        else:
            yield LogRecord(trace_id, location, fmt, case=case)
