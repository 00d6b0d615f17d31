"""LangSmith run exports: one Case per trace (root run).

Runs come nested (a root run with ``child_runs``, as ``read_run(load_child_runs=True)`` and
``RunTree`` dumps give them) or flat (each run with ``trace_id`` / ``parent_run_id``, as run
listings give them), as one JSON document, a JSON list, or JSONL. The answer is the last ``llm``
run's output (``outputs.generations[0][0]``, or ``outputs.choices[0].message``); its
``inputs.messages`` give the prompt (LangChain's serialised messages ``{"lc": 1, "type":
"constructor", ...}``, ``{"type": "human", "data": ...}`` dicts, or OpenAI-style dicts);
``retriever`` runs give ``outputs.documents`` (``page_content`` / ``metadata`` / ``id``);
``tool`` runs give results (``extra.tool_call_id`` links them to the model's calls).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from relyscope.case import CaseError
from relyscope.ingest.jsonio import (
    SHAPE_ERRORS,
    JsonDoc,
    as_json_text,
    as_text,
    dicts,
    first,
    iter_docs,
    maybe_json,
)
from relyscope.ingest.openinference import tool_output_text
from relyscope.ingest.records import (
    Conversation,
    Document,
    LogRecord,
    Message,
    ToolRequest,
    ToolRun,
    build_case,
)

FORMAT = "langsmith"
_LC_ROLES = {"human": "user", "humanmessage": "user", "user": "user",
             "ai": "assistant", "aimessage": "assistant", "assistant": "assistant",
             "system": "system", "systemmessage": "system",
             "tool": "tool", "toolmessage": "tool", "function": "tool", "functionmessage": "tool"}
_ID_KEYS = ("id", "doc_id", "document_id", "chunk_id")
_SCORE_KEYS = ("score", "relevance_score", "similarity")


def read_langsmith(paths: Iterable[str | Path], *,
                   parse_arguments: bool = False) -> Iterator[LogRecord]:
    return records_from_docs(iter_docs(paths), parse_arguments=parse_arguments)


def records_from_docs(docs: Iterable[JsonDoc], *,
                      parse_arguments: bool = False) -> Iterator[LogRecord]:
    runs: list[dict[str, Any]] = []
    locations: dict[str, str] = {}
    for doc in docs:
        if doc.error is not None:
            yield LogRecord(doc.location, doc.location, FORMAT,
                            error=CaseError("", doc.error, record=doc.location))
            continue
        for raw in doc.value if isinstance(doc.value, list) else [doc.value]:
            if not isinstance(raw, dict) or "id" not in raw:
                yield LogRecord(doc.location, doc.location, FORMAT, error=CaseError(
                    "id", "not a LangSmith run (an object with an id)", record=doc.location))
                continue
            for run in _flatten(raw, raw.get("trace_id") or raw["id"]):
                locations.setdefault(run["_trace"], doc.location)
                runs.append(run)
    for trace_id, members in _by_trace(runs).items():
        location = locations[trace_id]
        try:
            case = build_case(conversation_of_trace(trace_id, members), fmt=FORMAT,
                              location=location, parse_arguments=parse_arguments)
        except CaseError as err:
            yield LogRecord(trace_id, location, FORMAT, error=err)
        except SHAPE_ERRORS as err:
            yield LogRecord(trace_id, location, FORMAT, error=CaseError(
                "", f"unreadable run ({type(err).__name__}: {err})", record=trace_id))
        else:
            yield LogRecord(trace_id, location, FORMAT, case=case)


def _flatten(run: dict[str, Any], trace: str) -> Iterator[dict[str, Any]]:
    yield {**run, "_trace": str(run.get("trace_id") or trace)}
    for child in dicts(run.get("child_runs")):
        yield from _flatten(child, trace)


def _by_trace(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for order, run in enumerate(runs):
        key = str(run["id"]) if run.get("id") is not None else f"#{order}"  # a child without
        if key in seen:
            continue
        seen.add(key)
        traces.setdefault(run["_trace"], []).append({**run, "_order": order})
    for members in traces.values():
        members.sort(key=lambda r: (_time(r.get("start_time")), r["_order"]))
    return traces


def conversation_of_trace(trace_id: str, runs: list[dict[str, Any]]) -> Conversation:
    llms = [r for r in runs if r.get("run_type") == "llm"]
    if not llms:
        raise CaseError("run_type", "no llm run in the trace", record=trace_id)
    final = max(llms, key=lambda r: (_time(r.get("end_time")), r["_order"]))
    where = f"run[{final['id']}]"
    start = _time(final.get("start_time"))
    earlier = [r for r in runs if r is not final and _time(r.get("start_time")) <= start]
    retrievers = [r for r in earlier if r.get("run_type") == "retriever"]
    answer, answer_field = _answer(final.get("outputs") or {}, where)
    extra = final.get("extra") or {}
    params = extra.get("invocation_params") or {}
    return Conversation(
        record_id=trace_id,
        messages=_input_messages(final.get("inputs") or {}),
        answer=answer,
        messages_field=f"{where}.inputs.messages",
        answer_field=answer_field,
        documents=[doc for run in retrievers for doc in _documents(run)],
        tool_runs=[_tool_run(r) for r in earlier if r.get("run_type") == "tool"],
        retrieval_query=next((as_text(first(r.get("inputs") or {}, "query", "input"))
                              for r in retrievers if r.get("inputs")), None),
        model=first(params, "model", "model_name")
              or first(extra.get("metadata") or {}, "ls_model_name"),
        answer_span=str(final["id"]),
        metadata={"trace_id": trace_id},
    )


def lc_message(raw: Any) -> Message:
    """A message as LangChain serialises it (any of its dict forms) or as OpenAI writes it."""
    if not isinstance(raw, dict):
        return Message("user", as_text(raw))
    if raw.get("lc") == 1 and isinstance(raw.get("id"), list):
        kwargs, kind = raw.get("kwargs") or {}, str(raw["id"][-1])
    elif isinstance(raw.get("data"), dict):
        kwargs, kind = raw["data"], str(raw.get("type", ""))
    else:
        kwargs, kind = raw, str(first(raw, "role", "type") or "")
    role = _LC_ROLES.get(kind.lower(), str(kwargs.get("role", kind)).lower())
    calls = [ToolRequest(c.get("id"), c.get("name"), c.get("args"))
             for c in kwargs.get("tool_calls") or [] if isinstance(c, dict) and "args" in c]
    if not calls:  # OpenAI shape, top level or in additional_kwargs
        raw_calls = kwargs.get("tool_calls") or (kwargs.get("additional_kwargs") or {}).get(
            "tool_calls") or []
        calls = [ToolRequest(c.get("id"), (c.get("function") or {}).get("name"),
                             (c.get("function") or {}).get("arguments"))
                 for c in raw_calls if isinstance(c, dict)]
    return Message(role, as_text(kwargs.get("content")), tool_calls=calls,
                   tool_call_id=kwargs.get("tool_call_id"))


def _input_messages(inputs: dict[str, Any]) -> list[Message]:
    messages = inputs.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], list):
        messages = messages[0]  # a batch of one conversation
    if isinstance(messages, list):
        return [lc_message(m) for m in messages]
    prompts = inputs.get("prompts")
    if isinstance(prompts, list) and prompts and isinstance(prompts[0], str):
        return [Message("user", prompts[0])]
    return []


def _answer(outputs: dict[str, Any], where: str) -> tuple[str | None, str]:
    generations = outputs.get("generations")
    if isinstance(generations, list) and generations:
        generation = generations[0][0] if isinstance(generations[0], list) else generations[0]
        text = lc_message(generation["message"]).content if generation.get("message") else None
        return text or generation.get("text") or None, f"{where}.outputs.generations[0][0]"
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices:
        return as_text((choices[0].get("message") or {}).get("content")), \
            f"{where}.outputs.choices[0].message.content"
    value = first(outputs, "output", "content", "text")
    if isinstance(value, dict):
        value = lc_message(value).content
    return (value if isinstance(value, str) else None), f"{where}.outputs"


def _documents(run: dict[str, Any]) -> list[Document]:
    raw_docs = (run.get("outputs") or {}).get("documents") or []
    documents = []
    for index, raw in enumerate(raw_docs):
        if isinstance(raw, dict) and raw.get("lc") == 1:
            raw = {**(raw.get("kwargs") or {})}
        raw = raw if isinstance(raw, dict) else {"page_content": raw}
        metadata = maybe_json(raw.get("metadata"))
        metadata = metadata if isinstance(metadata, dict) else {}
        doc_id = first(raw, "id") or first(metadata, *_ID_KEYS)
        score = next((metadata[k] for k in _SCORE_KEYS
                      if isinstance(metadata.get(k), int | float)), None)
        documents.append(Document(
            id=str(doc_id) if doc_id is not None else f"{run['id']}:{index}",
            text=first(raw, "page_content", "content", "text"),
            where=f"run[{run['id']}].outputs.documents[{index}].page_content",
            span=str(run["id"]), score=float(score) if score is not None else None,
            title=first(metadata, "title"), metadata=metadata))
    return documents


def _tool_run(run: dict[str, Any]) -> ToolRun:
    inputs = run.get("inputs") or {}
    arguments: Any = inputs
    if set(inputs) == {"input"}:
        arguments = maybe_json(inputs["input"])
    outputs = run.get("outputs") or {}
    output = outputs.get("output", outputs or None)
    extra = run.get("extra") or {}
    call_id = extra.get("tool_call_id") or (output.get("tool_call_id")
                                            if isinstance(output, dict) else None)
    text = tool_output_text(output)
    return ToolRun(id=call_id, name=run.get("name"),
                   arguments=arguments if isinstance(arguments, str) else as_json_text(arguments),
                   output=text, where=f"run[{run['id']}].outputs", span=str(run["id"]),
                   status="error" if run.get("error") else "ok")


def _time(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):  # not a time, or out of range
            return 0.0
    return 0.0
