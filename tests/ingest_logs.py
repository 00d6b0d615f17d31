"""Real logs of one known conversation, written at test time by the real instrumentation.

The conversation: a RAG answer with one tool call. A LangChain run (fake chat model, a
retriever, a tool) is traced by openinference-instrumentation-langchain into the OTel SDK
(OTLP JSON via the SDK's own protobuf encoder, and Phoenix's flat span form), and by LangChain's
LangSmith tracer (run tree dump, nothing sent); the same conversation goes through
opentelemetry-util-genai's TelemetryHandler for OTel GenAI spans; OpenAI chat JSONL is written
by hand (no instrumentation writes it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SYSTEM = "Answer the question in one sentence using the context and tool results."
QUERY = "Who founded the Zelk guild, and how warm is it in Mirel?"
SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt.", 0.41),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel.", 0.83),
    ("d2", "Copper prices rose sharply in the northern markets last year.", 0.37),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns.", 0.35),
    ("d4", "Tidewater lighthouses use rotating lenses to guide ships at night.", 0.33),
]
CALL_ID, TOOL, ARGUMENTS, TOOL_OUTPUT = "call_1", "get_temperature", {"city": "Mirel"}, \
    "18 degrees Celsius"
ANSWER = "The Zelk guild was founded by Anna Roth, and it is 18 degrees Celsius in Mirel."


def user_prompt(query: str = QUERY) -> str:
    context = "\n".join(f"[{doc_id}] {text}" for doc_id, text, _ in SOURCES)
    return f"Context:\n{context}\n\nQuestion: {query}"


def essence(case: Any) -> dict[str, Any]:
    """What must survive any log format (ids are the log's own, so they are compared too)."""
    return {
        "system": case.system, "query": case.query, "answer": case.answer,
        "sources": [(s.id, s.text, s.retrieval_score) for s in case.sources],
        "tool_calls": [(c.id, c.name, json.loads(c.arguments), c.output, c.status)
                       for c in case.tool_calls],
    }


EXPECTED = {
    "system": SYSTEM, "query": QUERY, "answer": ANSWER,
    "sources": [(doc_id, text, score) for doc_id, text, score in SOURCES],
    "tool_calls": [(CALL_ID, TOOL, ARGUMENTS, TOOL_OUTPUT, "ok")],
}


# -- the LangChain run -------------------------------------------------------------------------


def run_langchain(query: str = QUERY, callbacks: list[Any] | None = None) -> str:
    """Retrieve, ask the (fake) model, run the tool it asks for, ask again; return the answer."""
    from langchain_core.documents import Document
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool

    class ZelkRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(id=doc_id, page_content=text, metadata={"score": score})
                    for doc_id, text, score in SOURCES]

    @tool
    def get_temperature(city: str) -> str:
        """The temperature in a city."""
        return TOOL_OUTPUT

    model = GenericFakeChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": TOOL, "args": ARGUMENTS, "id": CALL_ID}]),
        AIMessage(content=ANSWER),
    ]))

    def rag(question: str) -> str:
        docs = ZelkRetriever().invoke(question)
        context = "\n".join(f"[{d.id}] {d.page_content}" for d in docs)
        messages: list[Any] = [SystemMessage(SYSTEM),
                               HumanMessage(f"Context:\n{context}\n\nQuestion: {question}")]
        reply = model.invoke(messages)
        messages.append(reply)
        messages.extend(get_temperature.invoke(call) for call in reply.tool_calls)
        return str(model.invoke(messages).content)

    return RunnableLambda(rag).invoke(query, config={"callbacks": callbacks or []})


# -- OpenInference ------------------------------------------------------------------------------


@contextmanager
def openinference_tracing(**config: Any) -> Iterator[Any]:
    """LangChain instrumented by OpenInference into an in-memory exporter; yields the exporter."""
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider, config=TraceConfig(**config))
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


def otlp_json(spans: Any) -> dict[str, Any]:
    """Spans as OTLP JSON, by the SDK's protobuf encoder and protobuf's JSON printer."""
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return json_format.MessageToDict(encode_spans(spans))


def phoenix_span(span: Any) -> dict[str, Any]:
    """A span in Phoenix's flat export form: context ids in hex, nested attributes."""
    from datetime import UTC, datetime

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()

    attributes = dict(span.attributes)
    return {
        "name": span.name,
        "context": {"trace_id": f"{span.context.trace_id:032x}",
                    "span_id": f"{span.context.span_id:016x}"},
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "span_kind": attributes.get("openinference.span.kind", "UNKNOWN"),
        "start_time": iso(span.start_time), "end_time": iso(span.end_time),
        "status_code": span.status.status_code.name,
        "attributes": unflatten(attributes),
    }


def unflatten(attributes: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested dicts, numeric parts to lists (as Phoenix stores attributes)."""
    root: dict[str, Any] = {}
    for key, value in attributes.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = {k: lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node

    return lists(root)


def write_openinference(path: Path, *, runs: int = 1, form: str = "otlp", **config: Any) -> Path:
    """`runs` traced conversations in `form`: "otlp" (one JSON document), "otlp-lines"
    (one export request a line, as a collector's file exporter writes) or "flat" (JSONL)."""
    with openinference_tracing(**config) as exporter:
        for _ in range(runs):
            run_langchain()
        spans = exporter.get_finished_spans()
    if form == "otlp":
        path.write_text(json.dumps(otlp_json(spans)))
    elif form == "otlp-lines":
        path.write_text("".join(json.dumps(otlp_json([s])) + "\n" for s in spans))
    else:
        path.write_text("".join(json.dumps(phoenix_span(s)) + "\n" for s in spans))
    return path


# -- OTel GenAI ---------------------------------------------------------------------------------


def write_otel_genai(path: Path, monkeypatch: Any, *, capture: bool = True,
                     runs: int = 1) -> Path:
    """The conversation through opentelemetry-util-genai's TelemetryHandler, as OTLP JSON."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.util.genai.handler import TelemetryHandler
    from opentelemetry.util.genai.types import (
        InputMessage,
        OutputMessage,
        TextPart,
        ToolCallRequestPart,
        ToolCallResponsePart,
    )

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                       "SPAN_ONLY" if capture else "NO_CONTENT")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = TelemetryHandler(tracer_provider=provider)
    tracer = provider.get_tracer("relyscope-tests")
    call = ToolCallRequestPart(arguments=ARGUMENTS, name=TOOL, id=CALL_ID)
    prompt = [InputMessage("user", [TextPart(user_prompt())])]
    for _ in range(runs):
        with tracer.start_as_current_span("rag"):
            with handler.retrieval(data_source_id="zelk-kb") as retrieval:
                retrieval.query_text = QUERY
                retrieval.documents = [{"id": i, "score": s, "content": t} for i, t, s in SOURCES]
            with handler.inference("openai", request_model="gpt-4o-mini") as first:
                first.system_instruction = [TextPart(SYSTEM)]
                first.input_messages = prompt
                first.output_messages = [OutputMessage("assistant", [call], "tool_calls")]
            with handler.tool(TOOL) as execution:
                execution.tool_call_id = CALL_ID
                execution.arguments = ARGUMENTS
                execution.tool_result = TOOL_OUTPUT
            with handler.inference("openai", request_model="gpt-4o-mini") as second:
                second.system_instruction = [TextPart(SYSTEM)]
                second.input_messages = prompt + [
                    InputMessage("assistant", [call]),
                    InputMessage("tool", [ToolCallResponsePart(TOOL_OUTPUT, CALL_ID)])]
                second.output_messages = [OutputMessage("assistant", [TextPart(ANSWER)], "stop")]
    path.write_text(json.dumps(otlp_json(exporter.get_finished_spans())))
    return path


# -- LangSmith ----------------------------------------------------------------------------------


def write_langsmith(path: Path, *, runs: int = 1) -> Path:
    """Root runs with their child runs, one JSON object a line, as LangSmith's tracer built them
    (its persistence is replaced by keeping the root run: nothing is sent anywhere)."""
    from langchain_core.tracers.langchain import LangChainTracer

    roots: list[Any] = []

    class OfflineTracer(LangChainTracer):
        # LangChain copies the tracer for nested calls (same run map), so state is shared
        def __init__(self, **kwargs: Any) -> None:
            kwargs["client"] = _NoClient()
            super().__init__(**kwargs)

        def _persist_run_single(self, run: Any) -> None:
            pass

        @staticmethod
        def _update_run_single(run: Any) -> None:
            pass

        def _persist_run(self, run: Any) -> None:
            roots.append(run)

    tracer = OfflineTracer()
    for _ in range(runs):
        run_langchain(callbacks=[tracer])
    path.write_text("".join(json.dumps(run_tree_dict(run)) + "\n" for run in roots))
    return path


class _NoClient:
    """Stands in for the LangSmith client: the offline tracer never calls it."""


def run_tree_dict(run: Any) -> dict[str, Any]:
    """A RunTree as LangSmith exports it: its fields in JSON form, child runs nested."""
    data = run.model_dump(mode="json", exclude={"child_runs"})
    data["child_runs"] = [run_tree_dict(child) for child in run.child_runs]
    return data


# -- OpenAI -------------------------------------------------------------------------------------


def openai_record(record_id: str = "chatcmpl-zelk-1", **extra: Any) -> dict[str, Any]:
    """The conversation as a Chat Completions log record, documents in a `documents` field."""
    record: dict[str, Any] = {
        "id": record_id, "model": "gpt-4o-mini",
        "documents": [{"id": i, "text": t, "score": s} for i, t, s in SOURCES],
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user_prompt()},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": CALL_ID, "type": "function",
                 "function": {"name": TOOL, "arguments": json.dumps(ARGUMENTS)}}]},
            {"role": "tool", "tool_call_id": CALL_ID, "content": TOOL_OUTPUT},
            {"role": "assistant", "content": ANSWER},
        ],
    }
    record.update(extra)
    return record


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path
