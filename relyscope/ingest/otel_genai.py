"""OTel GenAI semantic-convention spans (OTLP JSON or flat): one Case per trace.

Shapes (semantic-conventions-genai, development status):
- inference spans (``gen_ai.operation.name`` chat / text_completion / generate_content):
  ``gen_ai.system_instructions`` (a list of parts), ``gen_ai.input.messages`` and
  ``gen_ai.output.messages`` (lists of ``{"role", "parts": [...]}``; parts ``text`` with
  ``content``, ``tool_call`` with ``id``/``name``/``arguments``, ``tool_call_response`` with
  ``id`` and ``response`` (the spec's examples also write ``result``));
- retrieval spans: ``gen_ai.retrieval.documents`` (``id`` and ``score`` are the only required
  keys, so a log without the text is normal: the record is reported, not guessed at) and
  ``gen_ai.retrieval.query.text``;
- execute_tool spans: ``gen_ai.tool.name``, ``gen_ai.tool.call.{id,arguments,result}``.
All content attributes are opt-in: without content capture a record has ids and no text.
Each may be a JSON string or a structured value; both are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from relyscope.case import CaseError
from relyscope.ingest.jsonio import JsonDoc, as_json_text, first, iter_docs, maybe_json
from relyscope.ingest.records import (
    Conversation,
    Document,
    LogRecord,
    Message,
    ToolRequest,
    ToolRun,
)
from relyscope.ingest.spans import Span, trace_records

FORMAT = "otel_genai"
OPERATION = "gen_ai.operation.name"
INFERENCE_OPERATIONS = ("chat", "text_completion", "generate_content")
_CAPTURE_HINT = ("not captured (content capture is opt-in: "
                 "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)")


def read_otel_genai(paths: Iterable[str | Path], *,
                    parse_arguments: bool = False) -> Iterator[LogRecord]:
    return records_from_docs(iter_docs(paths), parse_arguments=parse_arguments)


def records_from_docs(docs: Iterable[JsonDoc], *,
                      parse_arguments: bool = False) -> Iterator[LogRecord]:
    return trace_records(docs, FORMAT, conversation_of_trace, parse_arguments=parse_arguments)


def conversation_of_trace(trace_id: str, spans: list[Span]) -> Conversation:
    inference = [s for s in spans if s.attributes.get(OPERATION) in INFERENCE_OPERATIONS] or [
        s for s in spans if "gen_ai.output.messages" in s.attributes]
    if not inference:
        raise CaseError(OPERATION, "no inference span (chat / text_completion / "
                                   "generate_content) in the trace", record=trace_id)
    final = max(inference, key=lambda s: (s.end, s.order))
    where = f"span[{final.span_id}]"
    earlier = [s for s in spans if s.start <= final.start and s is not final]
    retrievals = [s for s in earlier if s.attributes.get(OPERATION) == "retrieval"]
    documents = [doc for span in retrievals for doc in _documents(span, trace_id)]
    attrs = final.attributes
    messages = []
    if "gen_ai.input.messages" in attrs:
        system = _parts_text(maybe_json(attrs.get("gen_ai.system_instructions")))
        messages = ([Message("system", system)] if system else []) + _messages(
            maybe_json(attrs["gen_ai.input.messages"]))
    outputs = _messages(maybe_json(attrs.get("gen_ai.output.messages")))
    metadata: dict[str, Any] = {"trace_id": trace_id}
    conversation = first(attrs, "gen_ai.conversation.id")
    if conversation:
        metadata["conversation_id"] = conversation
    return Conversation(
        record_id=trace_id,
        messages=messages,
        answer=outputs[0].content if outputs else None,
        messages_field=f"{where}.gen_ai.input.messages",
        answer_field=f"{where}.gen_ai.output.messages"
                     + ("[0].parts (text)" if outputs else f" {_CAPTURE_HINT}"),
        documents=documents,
        tool_runs=[_tool_run(s) for s in earlier if s.attributes.get(OPERATION) == "execute_tool"],
        retrieval_query=next((s.attributes["gen_ai.retrieval.query.text"] for s in retrievals
                              if s.attributes.get("gen_ai.retrieval.query.text")), None),
        model=first(attrs, "gen_ai.response.model", "gen_ai.request.model"),
        answer_span=final.span_id,
        metadata=metadata,
    )


def _messages(value: Any) -> list[Message]:
    """Messages with parts as Messages; a tool message becomes one Message per response part."""
    if not isinstance(value, list):
        return []
    messages: list[Message] = []
    for raw in value:
        if not isinstance(raw, dict):
            continue
        role = str(raw.get("role", "")).lower()
        parts = raw.get("parts")
        if not isinstance(parts, list):  # not the convention, but seen in the wild
            messages.append(Message(role, _parts_text(raw.get("content"))))
            continue
        responses = [p for p in parts
                     if isinstance(p, dict) and p.get("type") == "tool_call_response"]
        for part in responses:
            messages.append(Message("tool", as_json_text(first(part, "response", "result")),
                                    tool_call_id=part.get("id")))
        if responses and role == "tool":
            continue
        calls = [ToolRequest(p.get("id"), p.get("name"), p.get("arguments"))
                 for p in parts if isinstance(p, dict) and p.get("type") == "tool_call"]
        messages.append(Message(role, _parts_text(parts), tool_calls=calls))
    return messages


def _parts_text(parts: Any) -> str | None:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return None
    texts = [p["content"] for p in parts if isinstance(p, dict) and p.get("type") == "text"
             and isinstance(p.get("content"), str)]
    return "".join(texts) if texts else None


def _documents(span: Span, trace_id: str) -> list[Document]:
    where = f"span[{span.span_id}].gen_ai.retrieval.documents"
    if "gen_ai.retrieval.documents" not in span.attributes:
        raise CaseError(where, _CAPTURE_HINT, record=trace_id)
    value = maybe_json(span.attributes["gen_ai.retrieval.documents"])
    if not isinstance(value, list):
        raise CaseError(where, "not a list of documents", record=trace_id)
    documents = []
    for index, raw in enumerate(value):
        raw = raw if isinstance(raw, dict) else {}
        metadata = maybe_json(raw.get("metadata"))
        score = raw.get("score")
        documents.append(Document(
            id=str(raw["id"]) if raw.get("id") is not None else f"{span.span_id}:{index}",
            text=first(raw, "content", "text", "page_content"), where=f"{where}[{index}].content",
            span=span.span_id, score=float(score) if isinstance(score, int | float) else None,
            title=first(raw, "title", "name"),
            metadata=metadata if isinstance(metadata, dict) else {}))
    return documents


def _tool_run(span: Span) -> ToolRun:
    attrs = span.attributes
    result = attrs.get("gen_ai.tool.call.result")
    return ToolRun(id=attrs.get("gen_ai.tool.call.id"), name=attrs.get("gen_ai.tool.name"),
                   arguments=attrs.get("gen_ai.tool.call.arguments"),
                   output=None if result is None else as_json_text(result),
                   where=f"span[{span.span_id}].gen_ai.tool.call.result", span=span.span_id,
                   status="error" if span.status_error or attrs.get("error.type") else "ok")
