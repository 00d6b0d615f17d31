"""A tool-calling loop with a chat model that records its trajectory as a `Case`.

The model is either a LangChain chat model (anything with ``bind_tools``: OpenAI, Anthropic,
Ollama, LangChain's fake models...) or any object following `ChatModel`, a small protocol over
OpenAI-format message dicts. Every tool call the model makes is run through the registry and
recorded with its id, name, arguments (JSON text), output and status; a tool that raises is
recorded as status ``error`` with the message as output and the loop goes on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)

from relyscope.agents.messages import default_case_id, message_text
from relyscope.agents.registry import ToolRegistry
from relyscope.case import Case, Source, ToolCall


@runtime_checkable
class ChatModel(Protocol):
    """The simple protocol: OpenAI-format messages and tool schemas in, one reply out.

    The reply is ``{"content": str, "tool_calls": [{"id", "name", "arguments"}]}`` where
    arguments are a dict or JSON text; no tool calls means the content is the final answer.
    """

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
             ) -> dict[str, Any]: ...


@dataclass
class AgentRun:
    case: Case
    messages: list[BaseMessage]
    steps: int
    stopped: str  # "answer" or "max_steps"


class AgentExecutor:
    """Runs the loop: model -> tool calls -> tool messages -> model ... -> answer."""

    def __init__(self, model: Any, tools: ToolRegistry | Sequence[Any], *,
                 system: str | None = None, max_steps: int = 8) -> None:
        self.registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.system = system
        self.max_steps = max_steps
        self.model = model
        if hasattr(model, "bind_tools"):
            self._bound = model.bind_tools(self.registry.langchain_tools())
        elif isinstance(model, ChatModel):
            self._bound = None
        else:
            raise TypeError("model must be a LangChain chat model with bind_tools or follow "
                            "relyscope.agents.ChatModel (a chat(messages, tools) method)")

    def run(self, query: str, *, sources: Sequence[Source] = (), case_id: str | None = None,
            config: dict[str, Any] | None = None) -> AgentRun:
        """Answer `query` (with `sources` as context, if any); `config` goes to LangChain."""
        messages: list[BaseMessage] = []
        if self.system:
            messages.append(SystemMessage(self.system))
        messages.append(HumanMessage(user_prompt(query, sources)))
        calls: list[ToolCall] = []
        answer: str | None = None
        stopped = "max_steps"
        step = 0
        while step < self.max_steps:
            step += 1
            reply = self._ask(messages, config)
            messages.append(reply)
            requested = list(reply.tool_calls) + list(reply.invalid_tool_calls)
            if not requested:
                answer = message_text(reply).strip() or None
                stopped = "answer"
                break
            for request in requested:
                call = self._run_tool(request, taken={c.id for c in calls})
                calls.append(call)
                messages.append(ToolMessage(call.output, tool_call_id=call.id, name=call.name,
                                            status="error" if call.status == "error"
                                            else "success"))
        case = Case.from_dict({
            "id": case_id or default_case_id(query, calls), "system": self.system,
            "query": query, "sources": [s.model_dump() for s in sources],
            "tool_calls": [c.model_dump() for c in calls], "answer": answer,
            "model": model_name(self.model),
            "metadata": {"agent": {"steps": step, "stopped": stopped}},
        })
        return AgentRun(case=case, messages=messages, steps=step, stopped=stopped)

    def _ask(self, messages: list[BaseMessage], config: dict[str, Any] | None) -> AIMessage:
        if self._bound is not None:
            reply = self._bound.invoke(messages, config=config)
            if not isinstance(reply, AIMessage):
                raise TypeError(f"chat model returned {type(reply).__name__}, not AIMessage")
            return reply
        raw = self.model.chat(convert_to_openai_messages(messages), self.registry.schemas())
        valid, invalid = [], []
        for call in raw.get("tool_calls") or []:
            args = call.get("arguments", {})
            parsed = _json_object(args) if isinstance(args, str) else dict(args)
            if parsed is None:
                invalid.append({"id": call.get("id"), "name": call.get("name"), "args": args,
                                "error": "arguments are not a JSON object"})
            else:
                valid.append({"id": call.get("id"), "name": call["name"], "args": parsed})
        return AIMessage(content=raw.get("content") or "", tool_calls=valid,
                         invalid_tool_calls=invalid)

    def _run_tool(self, request: dict[str, Any], taken: set[str]) -> ToolCall:
        """Run one requested call; an invalid call (args as raw text) fails as an error."""
        call_id = request.get("id") or f"call_{len(taken) + 1}"
        if call_id in taken:  # models sometimes repeat ids; unit ids must stay unique
            call_id = f"{call_id}~{len(taken) + 1}"
        name = request.get("name") or "unknown"
        args = request.get("args")
        arguments = args if isinstance(args, str) else json.dumps(args or {}, ensure_ascii=False)
        result = self.registry.call(name, arguments)
        return ToolCall(id=call_id, name=name, arguments=arguments, output=result.output,
                        status=result.status)


def user_prompt(query: str, sources: Sequence[Source]) -> str:
    """The user turn: retrieved passages (if any) as a context block, then the question."""
    if not sources:
        return query
    blocks = "\n\n".join(f"[{s.id}] {s.text}" for s in sources)
    return f"Context:\n{blocks}\n\nQuestion: {query}"


def model_name(model: Any) -> str | None:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
