"""OpenInference spans (OTLP JSON export, or Phoenix's flat span export): one Case per trace.

The answer is the last LLM span's output; its input messages give the system prompt, the query
and the tool calls with their results; RETRIEVER spans give the sources; TOOL spans fill in
tool results the messages lack. Field names follow the OpenInference semantic conventions.

Measured on openinference-instrumentation-langchain 0.1.80: RETRIEVER spans carry no
``document.id`` (only content and metadata), but the span's ``output.value`` JSON has each
LangChain Document's ``id``; TOOL spans carry no tool-call id, and ``input.value`` is the tool's
input, not the model's JSON arguments. Ids fall back in that order, then to ``<span id>:<i>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from relyscope.case import CaseError
from relyscope.ingest.jsonio import JsonDoc, as_json_text, as_text, first, iter_docs, maybe_json
from relyscope.ingest.records import (
    Conversation,
    Document,
    LogRecord,
    Message,
    ToolRequest,
    ToolRun,
    captured,
)
from relyscope.ingest.spans import Span, indexed, indexed_pairs, trace_records

FORMAT = "openinference"
KIND = "openinference.span.kind"
_ID_KEYS = ("id", "doc_id", "document_id", "chunk_id")
_SCORE_KEYS = ("score", "relevance_score", "similarity")


def read_openinference(paths: Iterable[str | Path], *,
                       parse_arguments: bool = False) -> Iterator[LogRecord]:
    return records_from_docs(iter_docs(paths), parse_arguments=parse_arguments)


def records_from_docs(docs: Iterable[JsonDoc], *,
                      parse_arguments: bool = False) -> Iterator[LogRecord]:
    return trace_records(docs, FORMAT, conversation_of_trace, parse_arguments=parse_arguments)


def conversation_of_trace(trace_id: str, spans: list[Span]) -> Conversation:
    llms = [s for s in spans if _kind(s) == "LLM"]
    if not llms:
        raise CaseError("openinference.span.kind", "no LLM span in the trace", record=trace_id)
    final = max(llms, key=lambda s: (s.end, s.order))
    where = f"span[{final.span_id}]"
    earlier = [s for s in spans if s.start <= final.start and s is not final]
    retrievers = [s for s in earlier if _kind(s) == "RETRIEVER"]
    documents = [doc for span in retrievers for doc in _documents(span)]
    query = next((captured(s.attributes.get("input.value")) for s in retrievers
                  if captured(s.attributes.get("input.value"))), None)
    answer, answer_field = _answer(final, where)
    metadata: dict[str, Any] = {"trace_id": trace_id}
    session = next((s.attributes["session.id"] for s in spans if "session.id" in s.attributes),
                   None)
    if session:
        metadata["session_id"] = session
    return Conversation(
        record_id=trace_id,
        messages=_messages(final.attributes, "llm.input_messages"),
        answer=answer,
        messages_field=f"{where}.llm.input_messages",
        answer_field=answer_field,
        documents=documents,
        tool_runs=[_tool_run(s) for s in earlier if _kind(s) == "TOOL"],
        retrieval_query=query,
        model=captured(first(final.attributes, "llm.model_name", "llm.response.model_name",
                             "llm.request.model_name")),
        answer_span=final.span_id,
        metadata=metadata,
    )


def _kind(span: Span) -> str:
    return str(span.attributes.get(KIND, "")).upper()


def _messages(attributes: dict[str, Any], prefix: str) -> list[Message]:
    messages = []
    for item in indexed(attributes, prefix):
        content = captured(item.get("message.content"))
        if content is None:
            parts = [p.get("message_content.text") for p in indexed(item, "message.contents")
                     if p.get("message_content.type", "text") == "text"]
            content = "".join(p for p in parts if isinstance(p, str)) or None
        calls = [ToolRequest(id=c.get("tool_call.id"), name=c.get("tool_call.function.name"),
                             arguments=c.get("tool_call.function.arguments"))
                 for c in indexed(item, "message.tool_calls")]
        messages.append(Message(role=str(item.get("message.role", "")).lower(), content=content,
                                tool_calls=calls, tool_call_id=item.get("message.tool_call_id")))
    return messages


def _answer(span: Span, where: str) -> tuple[str | None, str]:
    outputs = _messages(span.attributes, "llm.output_messages")
    if outputs:
        return outputs[0].content, f"{where}.llm.output_messages.0.message.content"
    value = captured(span.attributes.get("output.value"))
    if value is not None and span.attributes.get("output.mime_type") != "application/json":
        return str(value), f"{where}.output.value"
    return None, f"{where}.llm.output_messages"


def _documents(span: Span) -> list[Document]:
    logged = maybe_json(captured(span.attributes.get("output.value")))
    output_docs = logged.get("documents") if isinstance(logged, dict) else None
    documents = []
    for index, item in indexed_pairs(span.attributes, "retrieval.documents"):
        metadata = maybe_json(captured(item.get("document.metadata")))
        metadata = metadata if isinstance(metadata, dict) else {}
        doc_id = item.get("document.id")
        if doc_id is None and isinstance(output_docs, list) and index < len(output_docs):
            doc_id = (output_docs[index] or {}).get("id")
        if doc_id is None:
            doc_id = first(metadata, *_ID_KEYS)
        score = item.get("document.score")
        if score is None:
            score = next((metadata[k] for k in _SCORE_KEYS
                          if isinstance(metadata.get(k), int | float)), None)
        documents.append(Document(
            id=str(doc_id) if doc_id is not None else f"{span.span_id}:{index}",
            text=captured(item.get("document.content")),
            where=f"span[{span.span_id}].retrieval.documents.{index}.document.content",
            span=span.span_id, score=float(score) if score is not None else None,
            title=item.get("document.name"), metadata=metadata))
    return documents


def _tool_run(span: Span) -> ToolRun:
    attrs = span.attributes
    output = maybe_json(captured(attrs.get("output.value")))
    call_id = first(attrs, "tool.id", "tool_call.id")
    if call_id is None and isinstance(output, dict):
        call_id = first(output, "tool_call_id") or first(output.get("data") or {}, "tool_call_id")
    return ToolRun(id=call_id, name=first(attrs, "tool.name") or span.name,
                   arguments=captured(attrs.get("input.value")), output=tool_output_text(output),
                   where=f"span[{span.span_id}].output.value", span=span.span_id,
                   status="error" if span.status_error else "ok")


def tool_output_text(value: Any) -> str | None:
    """A tool result as text; a serialised LangChain ToolMessage gives its content."""
    if isinstance(value, dict):
        inner = value.get("data") if isinstance(value.get("data"), dict) else value
        if value.get("type") == "tool" or "tool_call_id" in inner:
            return as_text(inner.get("content"))
        if "output" in value:
            return tool_output_text(value["output"])
    if value is None or isinstance(value, str):
        return value
    return as_json_text(value)
