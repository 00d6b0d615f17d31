"""Capture a LangChain run (agent, chain, LangGraph graph; any chat model) into a `Case`.

Pass `CaseRecorder()` in ``config={"callbacks": [recorder]}`` and call `recorder.to_case()`
after the run:

- retriever runs -> sources (ids from ``Document.id`` / id metadata, else a stable hash of the
  text); a retriever that runs inside a tool is part of that tool's output, not a source;
- tool runs -> tool calls, in start order, with the model's ``tool_call_id``, the arguments as
  the model emitted them, the output and status (``error`` for ToolMessages with status error
  and for tools that raised);
- the root chain's input (``input`` / ``question`` / ``query`` / last human message) -> the
  query, else the first model call's last human message; that call's system message -> the
  system prompt; the last model output that calls no tool -> the answer. Tool calls the
  model made that no LangChain tool ran (the app ran them itself) are filled in from
  ToolMessages in later model inputs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from relyscope.agents.messages import default_case_id, message_text, tool_message_status
from relyscope.agents.registry import error_text
from relyscope.case import Case, CaseError, Source, ToolCall
from relyscope.retrievers.langchain import documents_to_sources

_QUERY_KEYS = ("input", "question", "query")


@dataclass
class _ToolRun:
    name: str
    arguments: str
    call_id: str | None
    output: str = ""
    status: str = "ok"
    done: bool = False


@dataclass
class _State:
    system: str | None = None
    root_query: str | None = None  # the root chain's input: the user's own words
    model_query: str | None = None  # the first model call's last human message (fallback)
    answer: str | None = None
    model: str | None = None
    sources: list[Source] = field(default_factory=list)
    tools: dict[UUID, _ToolRun] = field(default_factory=dict)  # insertion = start order
    emitted: dict[str, dict[str, Any]] = field(default_factory=dict)  # call id -> name, args
    tool_messages: dict[str, ToolMessage] = field(default_factory=dict)


class CaseRecorder(BaseCallbackHandler):
    """A callback handler that records one LangChain run as an auditable `Case`.

    Use a fresh recorder per run. A failure inside the recorder is logged by LangChain, not
    raised into the caller's run (LangChain's default): auditing must not break the agent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # LangGraph runs parallel tool calls in threads
        self._state = _State()
        self._parents: dict[UUID, UUID | None] = {}

    # -- chains (query fallback for runs without a chat model) -----------------------------

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: dict[str, Any] | Any,
                       *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        with self._lock:
            self._parents[run_id] = parent_run_id
            if parent_run_id is None and self._state.root_query is None:
                self._state.root_query = _query_from_inputs(inputs)

    # -- models ---------------------------------------------------------------------------------

    def on_chat_model_start(self, serialized: dict[str, Any] | None,
                            messages: list[list[BaseMessage]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        conversation = messages[0] if messages else []
        with self._lock:
            self._parents[run_id] = parent_run_id
            state = self._state
            if state.model is None:
                state.model = _model_name(serialized, kwargs)
            for message in conversation:
                if isinstance(message, ToolMessage):
                    state.tool_messages.setdefault(message.tool_call_id, message)
            if state.system is None:
                state.system = next((message_text(m) for m in conversation
                                     if isinstance(m, SystemMessage)), None)
            humans = [m for m in conversation if isinstance(m, HumanMessage)]
            if humans and state.model_query is None:
                state.model_query = message_text(humans[-1])

    def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *,
                     run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        with self._lock:
            self._parents[run_id] = parent_run_id
            if self._state.model is None:
                self._state.model = _model_name(serialized, kwargs)
            if self._state.model_query is None and prompts:
                self._state.model_query = prompts[0]

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if not response.generations or not response.generations[0]:
            return
        generation = response.generations[0][0]
        message = generation.message if isinstance(generation, ChatGeneration) else None
        with self._lock:
            if isinstance(message, AIMessage) and (message.tool_calls
                                                   or message.invalid_tool_calls):
                for call in message.tool_calls:
                    if call.get("id"):
                        self._state.emitted[call["id"]] = {"name": call["name"],
                                                           "args": call["args"]}
                return
            text = message_text(message) if message is not None else generation.text
            if text.strip():
                self._state.answer = text.strip()

    # -- retrievers -------------------------------------------------------------------------------

    def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, *,
                           run_id: UUID, parent_run_id: UUID | None = None,
                           **kwargs: Any) -> None:
        with self._lock:
            self._parents[run_id] = parent_run_id

    def on_retriever_end(self, documents: list[Document], *, run_id: UUID, **kwargs: Any
                         ) -> None:
        with self._lock:
            if self._inside_tool(run_id):
                return
            taken = {s.id for s in self._state.sources}
            for source in documents_to_sources(documents):
                if source.id not in taken:  # the same chunk retrieved twice is one unit
                    self._state.sources.append(source)
                    taken.add(source.id)

    # -- tools ---------------------------------------------------------------------------------

    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *,
                      run_id: UUID, parent_run_id: UUID | None = None,
                      inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        call_id = kwargs.get("tool_call_id")
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        arguments = (json.dumps(inputs, ensure_ascii=False, default=str) if inputs is not None
                     else input_str)
        with self._lock:
            self._parents[run_id] = parent_run_id
            self._state.tools[run_id] = _ToolRun(name=name, arguments=arguments,
                                                 call_id=call_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._state.tools.get(run_id)
            if run is None:
                return
            if isinstance(output, ToolMessage):
                run.output, run.status = message_text(output), tool_message_status(output)
                run.call_id = run.call_id or output.tool_call_id
            else:
                run.output = output if isinstance(output, str) else str(output)
            run.done = True

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._state.tools.get(run_id)
            if run is None:
                return
            run.output, run.status, run.done = error_text(error), "error", True
            run.call_id = run.call_id or kwargs.get("tool_call_id")

    # -- result ------------------------------------------------------------------------------------

    def to_case(self, case_id: str | None = None, *, query: str | None = None,
                metadata: dict[str, Any] | None = None) -> Case:
        """The recorded run as a Case; `query` overrides the one taken from the run."""
        with self._lock:
            state = self._state
            query = query or state.root_query or state.model_query
            if not query:
                raise CaseError("query", "the run had no chat-model call or chain input to take "
                                         "the query from; pass query=")
            calls = self._tool_calls()
            return Case.from_dict({
                "id": case_id or default_case_id(query, calls), "system": state.system,
                "query": query, "sources": [s.model_dump() for s in state.sources],
                "tool_calls": [c.model_dump() for c in calls], "answer": state.answer,
                "model": state.model,
                "metadata": {"captured_from": "langchain", **(metadata or {})},
            })

    def _tool_calls(self) -> list[ToolCall]:
        calls: list[ToolCall] = []
        seen: set[str] = set()
        for run_id, run in self._state.tools.items():
            if self._inside_tool(self._parents.get(run_id)) or not run.done:
                continue  # nested tools are part of their parent's output
            call_id = run.call_id or f"tool-{run_id.hex[:12]}"
            emitted = self._state.emitted.get(call_id)
            arguments = (json.dumps(emitted["args"], ensure_ascii=False) if emitted
                         else run.arguments)
            calls.append(ToolCall(id=call_id, name=run.name, arguments=arguments,
                                  output=run.output, status=run.status))
            seen.add(call_id)
        for call_id, emitted in self._state.emitted.items():
            message = self._state.tool_messages.get(call_id)
            if call_id not in seen and message is not None:
                calls.append(ToolCall(id=call_id, name=emitted["name"],
                                      arguments=json.dumps(emitted["args"], ensure_ascii=False),
                                      output=message_text(message),
                                      status=tool_message_status(message)))
        return calls

    def _inside_tool(self, run_id: UUID | None) -> bool:
        """Whether `run_id` is a tool run or runs (at any depth) inside one."""
        while run_id is not None:
            if run_id in self._state.tools:
                return True
            run_id = self._parents.get(run_id)
        return False


def _query_from_inputs(inputs: Any) -> str | None:
    if isinstance(inputs, str):
        return inputs
    if not isinstance(inputs, dict):
        return None
    for key in _QUERY_KEYS:
        if isinstance(inputs.get(key), str):
            return inputs[key]
    messages = inputs.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                return message_text(message)
            if isinstance(message, dict) and message.get("role") in ("user", "human"):
                return str(message.get("content"))
            if isinstance(message, tuple) and message and message[0] in ("user", "human"):
                return str(message[1])
    return None


def _model_name(serialized: dict[str, Any] | None, kwargs: dict[str, Any]) -> str | None:
    params = kwargs.get("invocation_params") or {}
    for key in ("model", "model_name", "model_id"):
        if isinstance(params.get(key), str):
            return params[key]
    metadata = kwargs.get("metadata") or {}
    if isinstance(metadata.get("ls_model_name"), str):
        return metadata["ls_model_name"]
    if serialized:
        return serialized.get("name") or (serialized.get("id") or [None])[-1]
    return None
