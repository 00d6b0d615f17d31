"""Span-log plumbing: OTLP values and ids, Phoenix's nested attributes, hand-written spans."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import ingest_logs as logs

from relyscope.ingest import read_logs
from relyscope.ingest.spans import any_value, flatten_attributes, indexed, span_id_hex


def test_ids_from_hex_and_base64() -> None:
    raw = bytes(range(16))
    assert span_id_hex(raw.hex().upper(), 16) == raw.hex()
    assert span_id_hex(base64.b64encode(raw).decode(), 16) == raw.hex()
    assert span_id_hex(base64.b64encode(raw[:8]).decode(), 8) == raw[:8].hex()
    assert span_id_hex(255, 8) == "00000000000000ff"


def test_any_value_decodes_nested_values() -> None:
    value = {"kvlistValue": {"values": [
        {"key": "n", "value": {"intValue": "7"}},
        {"key": "xs", "value": {"arrayValue": {"values": [{"doubleValue": 0.5},
                                                          {"boolValue": True}]}}}]}}
    assert any_value(value) == {"n": 7, "xs": [0.5, True]}


def test_flatten_keeps_gen_ai_values_whole() -> None:
    nested = {"llm": {"input_messages": [{"message": {"role": "user", "content": "hi"}}]},
              "gen_ai.input.messages": [{"role": "user", "parts": []}]}
    flat = flatten_attributes(nested)
    assert flat == {"llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "hi",
                    "gen_ai.input.messages": [{"role": "user", "parts": []}]}
    assert indexed(flat, "llm.input_messages") == [{"message.role": "user",
                                                    "message.content": "hi"}]


def _span(span_id: str, kind: str, start: int, attributes: dict) -> dict:
    return {"context": {"trace_id": "ef" * 16, "span_id": span_id}, "name": kind.lower(),
            "span_kind": kind, "start_time": start, "end_time": start + 1,
            "attributes": attributes}


def test_hand_written_openinference_trace_with_document_ids_and_tool_ids(tmp_path: Path) -> None:
    """The convention's full field set: document.id/score, tool-call ids, tool message ids."""
    retriever = _span("a" * 16, "RETRIEVER", 1, {
        "input.value": logs.QUERY,
        **{f"retrieval.documents.{i}.document.{k}": v for i, (doc_id, text, score)
           in enumerate(logs.SOURCES) for k, v in (("id", doc_id), ("content", text),
                                                   ("score", score))}})
    call = {"id": logs.CALL_ID, "function": {"name": logs.TOOL,
                                             "arguments": json.dumps(logs.ARGUMENTS)}}
    llm = _span("b" * 16, "LLM", 5, {
        "llm.model_name": "m1",
        "llm.input_messages": [
            {"message": {"role": "system", "content": logs.SYSTEM}},
            {"message": {"role": "user", "content": logs.QUERY}},
            {"message": {"role": "assistant", "tool_calls": [{"tool_call": call}]}},
            {"message": {"role": "tool", "content": logs.TOOL_OUTPUT,
                         "tool_call_id": logs.CALL_ID}}],
        "llm.output_messages": [{"message": {"role": "assistant", "content": logs.ANSWER}}]})
    tool = _span("c" * 16, "TOOL", 3, {"tool.name": logs.TOOL, "tool.id": logs.CALL_ID,
                                       "input.value": json.dumps(logs.ARGUMENTS),
                                       "output.value": logs.TOOL_OUTPUT})
    path = logs.write_jsonl(tmp_path / "spans.jsonl", [llm, retriever, tool])
    (record,) = read_logs(path)
    assert record.format == "openinference" and record.record_id == "ef" * 16
    assert logs.essence(record.case) == logs.EXPECTED
    assert record.case.model == "m1"
    assert record.case.metadata["ingest"]["unit_spans"]["call_1"] == "c" * 16


def test_last_llm_span_is_the_answer_and_spans_without_ids_are_reported(tmp_path: Path) -> None:
    first = _span("1" * 16, "LLM", 1, {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Q?",
        "llm.output_messages.0.message.content": "draft"})
    last = _span("2" * 16, "LLM", 4, {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Q?",
        "llm.output_messages.0.message.content": "final"})
    orphan = {"name": "x", "attributes": {"openinference.span.kind": "LLM"}}
    path = logs.write_jsonl(tmp_path / "spans.jsonl", [first, orphan, last])
    records = list(read_logs(path))
    assert [r.ok for r in records] == [False, True]
    assert records[0].location == f"{path}:2" and records[0].error.field == "context.span_id"
    assert records[1].case.answer == "final" and records[1].case.sources == ()


def test_document_ids_stay_aligned_when_a_document_logged_nothing(tmp_path: Path) -> None:
    """LangChain ids come from output.value by position; an empty document leaves a gap."""
    documents = [{"id": "x0", "page_content": "Alpha."}, {"id": "x1", "page_content": ""},
                 {"id": "x2", "page_content": "Gamma."}]
    retriever = _span("a" * 16, "RETRIEVER", 1, {
        "output.value": json.dumps({"documents": documents}),
        "retrieval.documents.0.document.content": "Alpha.",
        "retrieval.documents.2.document.content": "Gamma."})
    llm = _span("b" * 16, "LLM", 2, {"llm.input_messages.0.message.role": "user",
                                     "llm.input_messages.0.message.content": "Q?",
                                     "llm.output_messages.0.message.content": "A."})
    (record,) = read_logs(logs.write_jsonl(tmp_path / "spans.jsonl", [retriever, llm]))
    assert [(s.id, s.text) for s in record.case.sources] == [("x0", "Alpha."), ("x2", "Gamma.")]


def test_tool_spans_alone_become_tool_calls_and_extra_ones_are_ignored(tmp_path: Path) -> None:
    tool = _span("c" * 16, "TOOL", 1, {"tool.name": "lookup", "input.value": "{}",
                                       "output.value": "7"})
    llm = _span("b" * 16, "LLM", 2, {"llm.input_messages.0.message.role": "user",
                                     "llm.input_messages.0.message.content": "Q?",
                                     "llm.output_messages.0.message.content": "A."})
    (record,) = read_logs(logs.write_jsonl(tmp_path / "a.jsonl", [tool, llm]))
    assert [(c.id, c.name, c.output) for c in record.case.tool_calls] == [("call-0", "lookup", "7")]
    llm["attributes"].update({
        "llm.input_messages.1.message.role": "assistant",
        "llm.input_messages.1.message.tool_calls.0.tool_call.id": "k1",
        "llm.input_messages.1.message.tool_calls.0.tool_call.function.name": "other",
        "llm.input_messages.2.message.role": "tool",
        "llm.input_messages.2.message.tool_call_id": "k1",
        "llm.input_messages.2.message.content": "8"})
    (record,) = read_logs(logs.write_jsonl(tmp_path / "b.jsonl", [tool, llm]))
    assert [(c.id, c.name, c.output) for c in record.case.tool_calls] == [("k1", "other", "8")]
