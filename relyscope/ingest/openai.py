"""OpenAI chat JSONL: one record per line (a whole-file JSON list or object works too).

A record holds ``messages`` (Chat Completions shape: assistant ``tool_calls`` with
``function.{name,arguments}``, ``role: tool`` messages with ``tool_call_id``), either at the top
level or under ``request`` / ``body``; the answer is the last assistant message with text after
the last user message, or else ``response.choices[0].message`` (also under ``response.body``,
as the Batch API writes it). Retrieved context comes from a ``documents`` / ``sources`` field
(objects with ``id`` and ``text`` / ``content`` / ``page_content``, or plain strings) or, when
there is none, from a context block in the system or user message (see `context`).
The record id is ``id``, ``custom_id`` or ``metadata.id``, else ``<file>:<line>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from relyscope.case import CaseError
from relyscope.ingest.jsonio import JsonDoc, as_text, first, iter_docs
from relyscope.ingest.records import (
    Conversation,
    Document,
    LogRecord,
    Message,
    ToolRequest,
    build_case,
)

FORMAT = "openai"
DOCUMENT_FIELDS = ("documents", "sources", "context_documents", "retrieved_documents")


def read_openai(paths: Iterable[str | Path], *,
                parse_arguments: bool = False) -> Iterator[LogRecord]:
    return records_from_docs(iter_docs(paths), parse_arguments=parse_arguments)


def records_from_docs(docs: Iterable[JsonDoc], *,
                      parse_arguments: bool = False) -> Iterator[LogRecord]:
    for doc in docs:
        if doc.error is not None:
            yield LogRecord(doc.location, doc.location, FORMAT,
                            error=CaseError("", doc.error, record=doc.location))
            continue
        records = doc.value if isinstance(doc.value, list) else [doc.value]
        for index, value in enumerate(records):
            location = doc.location if len(records) == 1 else f"{doc.location}[{index}]"
            yield record_of(value, location, parse_arguments=parse_arguments)


def record_of(value: Any, location: str, *, parse_arguments: bool = False) -> LogRecord:
    """The LogRecord of one OpenAI chat record; never raises."""
    record_id = location
    try:
        if not isinstance(value, dict):
            raise CaseError("", f"a record must be a JSON object, got {type(value).__name__}",
                            record=location)
        record_id = str(first(value, "id", "custom_id")
                        or first(value.get("metadata") or {}, "id", "record_id") or location)
        case = build_case(conversation_of(value, record_id), fmt=FORMAT, location=location,
                          parse_arguments=parse_arguments)
        return LogRecord(record_id, location, FORMAT, case=case)
    except CaseError as err:
        if err.record is None:
            err = CaseError(err.field, err.message, record=record_id)
        return LogRecord(record_id, location, FORMAT, error=err)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        return LogRecord(record_id, location, FORMAT, error=CaseError(
            "", f"unreadable record ({type(err).__name__}: {err})", record=record_id))


def conversation_of(record: dict[str, Any], record_id: str) -> Conversation:
    request = first(record, "request", "body") or {}
    if isinstance(request, dict) and isinstance(request.get("body"), dict):
        request = request["body"]
    raw_messages = record.get("messages") or request.get("messages")
    if not isinstance(raw_messages, list):
        raise CaseError("messages", "missing: no messages list in the record", record=record_id)
    messages = [_message(m) for m in raw_messages if isinstance(m, dict)]
    answer, answer_field = _answer(record, messages)
    if answer is not None and answer_field == "messages":  # the logged answer: drop it
        messages = messages[:-1]
    field_name = next((f for f in DOCUMENT_FIELDS if f in record), None)
    documents = [_document(raw, i, field_name) for i, raw in enumerate(record[field_name])] \
        if field_name else []
    return Conversation(
        record_id=record_id, messages=messages, answer=answer, messages_field="messages",
        answer_field="messages[-1] (final assistant message) or response.choices[0]"
        if answer is None else answer_field, documents=documents,
        model=first(record, "model") or first(request, "model"),
        metadata=record["metadata"] if isinstance(record.get("metadata"), dict) else {},
        answer_span=record_id)


def _message(raw: dict[str, Any]) -> Message:
    calls = []
    for call in raw.get("tool_calls") or []:
        function = call.get("function") or {}
        calls.append(ToolRequest(call.get("id"), function.get("name"), function.get("arguments")))
    return Message(role=str(raw.get("role", "")).lower(), content=as_text(raw.get("content")),
                   tool_calls=calls, tool_call_id=raw.get("tool_call_id"))


def _answer(record: dict[str, Any], messages: list[Message]) -> tuple[str | None, str]:
    if messages and messages[-1].role == "assistant" and not messages[-1].tool_calls \
            and messages[-1].content:
        return messages[-1].content, "messages"
    response = record.get("response") or {}
    if isinstance(response.get("body"), dict):
        response = response["body"]
    choices = response.get("choices") or record.get("choices") or []
    if choices and isinstance(choices[0], dict):
        return as_text((choices[0].get("message") or {}).get("content")), \
            "response.choices[0].message.content"
    return None, "messages"


def _document(raw: Any, index: int, field_name: str) -> Document:
    where = f"{field_name}[{index}].text"
    if isinstance(raw, str):
        return Document(f"doc-{index}", raw, where)
    if not isinstance(raw, dict):
        raise CaseError(f"{field_name}[{index}]", f"a document must be an object or a string, "
                               f"got {type(raw).__name__}")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    doc_id = first(raw, "id", "doc_id", "document_id")
    score = first(raw, "score", "retrieval_score", "relevance_score")
    return Document(id=str(doc_id) if doc_id is not None else f"doc-{index}",
                    text=as_text(first(raw, "text", "content", "page_content")), where=where,
                    score=float(score) if isinstance(score, int | float) else None,
                    title=first(raw, "title", "name"), metadata=metadata)
