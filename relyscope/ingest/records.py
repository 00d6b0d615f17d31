"""What every reader produces, and the one place where a logged conversation becomes a Case.

Each format module normalises its record into a `Conversation` (the final model call's input
messages, its answer, the retrieved documents and tool executions seen in the record, each
remembering where in the log it came from); `build_case` then applies the same rules to all
formats, so a conversation logged in any of them yields the same `Case`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from relyscope.case import Case, CaseError
from relyscope.ingest.context import question_of, split_context
from relyscope.ingest.jsonio import as_json_text

FormatName = Literal["openai", "openinference", "otel_genai", "langsmith"]
FORMATS: tuple[FormatName, ...] = ("openai", "openinference", "otel_genai", "langsmith")

#: What OpenInference's TraceConfig writes in place of hidden content.
REDACTED = "__REDACTED__"


@dataclass(frozen=True)
class LogRecord:
    """One record of a log: a Case, or the error that names the record and the missing field."""

    record_id: str
    location: str
    format: str
    case: Case | None = None
    error: CaseError | None = None

    @property
    def ok(self) -> bool:
        return self.case is not None


@dataclass
class ToolRequest:
    """A tool call as the model emitted it (arguments as logged: JSON text, object or None)."""

    id: str | None
    name: str | None
    arguments: Any = None


@dataclass
class Message:
    role: str
    content: str | None = None
    tool_calls: list[ToolRequest] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass
class Document:
    """A retrieved document. `where` names its text's field in the log (span and attribute)."""

    id: str | None
    text: str | None
    where: str
    span: str | None = None
    score: float | None = None
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolRun:
    """A tool execution logged on its own (a TOOL span, an execute_tool span, a tool run)."""

    id: str | None
    name: str | None
    arguments: Any
    output: str | None
    where: str
    span: str | None = None
    status: Literal["ok", "error"] = "ok"


@dataclass
class Conversation:
    """One logged answer, normalised; `*_field` name where the messages and answer live."""

    record_id: str
    messages: list[Message]
    answer: str | None
    messages_field: str
    answer_field: str
    documents: list[Document] = field(default_factory=list)
    tool_runs: list[ToolRun] = field(default_factory=list)
    retrieval_query: str | None = None
    model: str | None = None
    answer_span: str | None = None
    tool_call_spans: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def captured(value: Any) -> Any:
    """None for content that was not captured (absent, or redacted by the instrumentation)."""
    return None if value is None or value == REDACTED else value


def build_case(conv: Conversation, *, fmt: str, location: str,
               parse_arguments: bool = False) -> Case:
    """The Case of a normalised conversation; raises CaseError naming the record and field."""
    record = conv.record_id

    def fail(where: str, message: str) -> CaseError:
        return CaseError(where, message, record=record)

    if not conv.messages:
        raise fail(conv.messages_field, "not captured: the log has no input messages for the "
                                        "answer (content capture off?)")
    user_at = max((i for i, m in enumerate(conv.messages) if m.role == "user"), default=None)
    if user_at is None:
        raise fail(conv.messages_field, "no user message in the answer's input messages")
    user = conv.messages[user_at]
    if captured(user.content) is None:
        raise fail(f"{conv.messages_field}[{user_at}].content", "not captured")
    if captured(conv.answer) is None or not conv.answer.strip():
        raise fail(conv.answer_field, "not captured: the log has no answer text")

    system_parts = [m.content for m in conv.messages[:user_at]
                    if m.role == "system" and captured(m.content)]
    inline: list[Any] = []
    system_text = None
    if system_parts:
        found, system_text = split_context("\n\n".join(system_parts))
        inline.extend(found)
    found, user_text = split_context(user.content)
    inline.extend(found)

    documents = conv.documents or [
        Document(p.id or f"context-{i}", p.text, f"{conv.messages_field}.context[{i}]",
                 title=p.title) for i, p in enumerate(inline)]
    sources, unit_spans = _sources(documents, fail)

    query = question_of(user_text)
    if conv.retrieval_query and (not query or (query == user_text and any(
            s["text"] and s["text"] in query for s in sources))):
        query = conv.retrieval_query
    calls = _tool_calls(conv, user_at, fail)
    for call in calls:
        span = call.pop("span")
        if span:
            unit_spans[call["id"]] = span

    metadata = dict(conv.metadata)
    metadata["ingest"] = {"format": fmt, "location": location, "record_id": record,
                          "answer_span": conv.answer_span, "unit_spans": unit_spans}
    data = {"id": record, "system": system_text or None, "query": query, "sources": sources,
            "tool_calls": calls, "answer": conv.answer, "model": conv.model, "metadata": metadata}
    case = Case.from_dict(data, record=record)
    if parse_arguments:
        for call in case.tool_calls:
            try:
                call.parsed_arguments()
            except CaseError as err:
                raise fail(err.field, err.message) from None
    return case


def _sources(documents: list[Document], fail: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    sources: list[dict[str, Any]] = []
    spans: dict[str, str] = {}
    seen: dict[str, str] = {}
    for doc in documents:
        text = captured(doc.text)
        if text is None:
            raise fail(doc.where, "not captured: the log holds the document's id and score "
                                  "but not its text")
        if doc.id is None:
            raise fail(doc.where, "the document has no id")
        if seen.get(doc.id) == text:
            continue  # the same document retrieved twice
        seen[doc.id] = text
        sources.append({"id": doc.id, "text": text, "title": doc.title,
                        "retrieval_score": doc.score, "metadata": doc.metadata})
        if doc.span:
            spans[doc.id] = doc.span
    return sources, spans


def _tool_calls(conv: Conversation, user_at: int, fail: Any) -> list[dict[str, Any]]:
    """Tool calls after the last user message, with outputs from tool messages or tool runs.

    Tool runs are matched to the model's calls by id, else by name in order. When the messages
    show no tool calls at all, the trace's tool runs are taken as the calls.
    """
    later = conv.messages[user_at + 1:]
    requests = [call for m in later if m.role == "assistant" for call in m.tool_calls]
    results_by_id: dict[str, str | None] = {}
    results_in_order: deque[str | None] = deque()
    for m in later:
        if m.role == "tool":
            if m.tool_call_id:
                results_by_id[m.tool_call_id] = captured(m.content)
            else:
                results_in_order.append(captured(m.content))
    runs_by_id = {run.id: run for run in conv.tool_runs if run.id}
    runs_by_name: dict[str | None, deque[ToolRun]] = defaultdict(deque)
    for run in conv.tool_runs:
        runs_by_name[run.name].append(run)

    calls: list[dict[str, Any]] = []
    used: set[int] = set()
    for index, req in enumerate(requests):
        run = runs_by_id.get(req.id) if req.id else None
        if run is None:
            queue = runs_by_name.get(req.name) or deque()
            while queue and (id(queue[0]) in used or (queue[0].id and req.id)):
                queue.popleft()
            run = queue.popleft() if queue else None
        if run is not None:
            used.add(id(run))
        call_id = req.id or (run.id if run else None) or f"call-{index}"
        output = results_by_id.get(call_id) if call_id in results_by_id else (
            results_in_order.popleft() if results_in_order and not req.id else None)
        if output is None and run is not None:
            output = captured(run.output)
        if output is None:
            raise fail(f"tool_calls[{call_id}].output", "not captured: no tool message or tool "
                                                        "result was logged for this call")
        arguments = req.arguments if req.arguments is not None else (run.arguments if run else None)
        calls.append({"id": call_id, "name": req.name or (run.name if run else None) or "tool",
                      "arguments": as_json_text(arguments) or "{}", "output": output,
                      "status": run.status if run else "ok",
                      "span": conv.tool_call_spans.get(call_id) or (run.span if run else None)})
    if requests:  # the messages tell which calls belong to this answer; other runs do not
        return calls
    for run in conv.tool_runs:
        if captured(run.output) is None:
            raise fail(f"{run.where}.output", "not captured: the tool's result was not logged")
        calls.append({"id": run.id or f"call-{len(calls)}", "name": run.name or "tool",
                      "arguments": as_json_text(run.arguments) or "{}", "output": run.output,
                      "status": run.status, "span": run.span})
    return calls
