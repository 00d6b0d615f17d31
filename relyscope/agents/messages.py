"""LangChain message lists (``AIMessage.tool_calls`` / ``ToolMessage``) to a `Case`.

The conversation is read as the model saw it: the system message, the last human message
before the answer (the query), every tool call the model emitted with the ToolMessage that
answered it (matched by ``tool_call_id``), and the final AI message without tool calls (the
answer). Ids come from the messages; a call without an id gets ``call_<n>`` by position.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)

from relyscope.case import Case, CaseError, Source, ToolCall


def message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [c if isinstance(c, str) else c.get("text", "") for c in content
             if isinstance(c, str) or (isinstance(c, dict) and c.get("type") == "text")]
    return "".join(parts)


def tool_message_status(message: ToolMessage) -> str:
    return "error" if getattr(message, "status", "success") == "error" else "ok"


def case_from_messages(messages: Sequence[BaseMessage | dict[str, Any]], *,
                       sources: Sequence[Source] = (), case_id: str | None = None,
                       model: str | None = None, metadata: dict[str, Any] | None = None
                       ) -> Case:
    """A Case from a LangChain (or OpenAI-format dict) message list; see the module doc."""
    msgs = convert_to_messages(list(messages))
    system = next((message_text(m) for m in msgs if isinstance(m, SystemMessage)), None)
    answer_at = _final_answer_index(msgs)
    upto = msgs[:answer_at] if answer_at is not None else msgs
    humans = [m for m in upto if isinstance(m, HumanMessage)]
    if not humans:
        raise CaseError("query", "the messages have no human message to take the query from")
    query = message_text(humans[-1])
    results = {m.tool_call_id: m for m in msgs if isinstance(m, ToolMessage)}
    calls: list[ToolCall] = []
    warnings: list[str] = []
    for message in msgs:
        if not isinstance(message, AIMessage):
            continue
        for call in message.tool_calls:
            call_id = call.get("id") or f"call_{len(calls) + 1}"
            result = results.get(call_id)
            if result is None:
                warnings.append(f"tool call {call_id} ({call['name']}) has no ToolMessage; "
                                "left out")
                continue
            calls.append(ToolCall(id=call_id, name=call["name"],
                                  arguments=json.dumps(call.get("args", {}), ensure_ascii=False),
                                  output=message_text(result),
                                  status=tool_message_status(result)))
    answer = None
    if answer_at is not None:
        answer = message_text(msgs[answer_at]).strip() or None
    meta = dict(metadata or {})
    if warnings:
        meta["warnings"] = warnings
    return Case.from_dict({
        "id": case_id or default_case_id(query, calls),
        "system": system, "query": query,
        "sources": [s.model_dump() for s in sources],
        "tool_calls": [c.model_dump() for c in calls],
        "answer": answer, "model": model, "metadata": meta,
    })


def default_case_id(query: str, calls: Sequence[ToolCall] = ()) -> str:
    """A stable id from the query and the tool call ids, for runs that carry none."""
    key = json.dumps([query, [c.id for c in calls]])
    return "case-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def _final_answer_index(msgs: Sequence[BaseMessage]) -> int | None:
    """Index of the last message when it is an AI message that calls no tool."""
    if msgs and isinstance(msgs[-1], AIMessage) and not msgs[-1].tool_calls:
        return len(msgs) - 1
    return None
