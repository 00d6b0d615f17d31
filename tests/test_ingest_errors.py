"""Bad records are reported with their line or record id and skipped; the rest are read."""

from __future__ import annotations

import json
from pathlib import Path

import ingest_logs as logs
import pytest

from relyscope.ingest import read_logs


def test_bad_json_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = logs.write_jsonl(tmp_path / "chat.jsonl", [
        logs.openai_record("r1"), '{"id": "r2", "messages": [', logs.openai_record("r3")])
    records = list(read_logs(path))
    assert [(r.record_id, r.ok) for r in records] == [("r1", True), (f"{path}:2", False),
                                                       ("r3", True)]
    assert records[1].location == f"{path}:2"
    assert "not valid JSON" in str(records[1].error)
    assert f"{path}:2" in str(records[1].error)


def test_truncated_json_document_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    path.write_text('{"resourceSpans": [\n  {"resource": {},\n')
    records = list(read_logs(path))
    assert len(records) == 1 and not records[0].ok
    assert records[0].location == str(path)


def test_document_without_text_names_record_and_field(tmp_path: Path) -> None:
    broken = logs.openai_record("r2")
    del broken["documents"][1]["text"]
    path = logs.write_jsonl(tmp_path / "chat.jsonl", [logs.openai_record("r1"), broken])
    good, bad = read_logs(path)
    assert good.ok and not bad.ok
    assert bad.error.record == "r2"
    assert bad.error.field == "documents[1].text"
    assert "not captured" in bad.error.message


def test_missing_tool_result_and_answer_are_errors(tmp_path: Path) -> None:
    no_tool = logs.openai_record("r1")
    no_tool["messages"] = [m for m in no_tool["messages"] if m["role"] != "tool"]
    no_answer = logs.openai_record("r2")
    no_answer["messages"] = no_answer["messages"][:-1]
    path = logs.write_jsonl(tmp_path / "chat.jsonl", [no_tool, no_answer])
    first, second = read_logs(path)
    assert (first.error.record, first.error.field) == ("r1", "tool_calls[call_1].output")
    assert second.error.record == "r2" and "answer" in second.error.message


def test_invalid_tool_arguments_are_kept_as_text_unless_parsing_is_asked(tmp_path: Path) -> None:
    record = logs.openai_record("r1")
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"city": "Mir'
    path = logs.write_jsonl(tmp_path / "chat.jsonl", [record, logs.openai_record("r2")])
    kept = list(read_logs(path))
    assert [r.ok for r in kept] == [True, True]
    assert kept[0].case.tool_calls[0].arguments == '{"city": "Mir'
    parsed = list(read_logs(path, parse_arguments=True))
    assert [r.ok for r in parsed] == [False, True]
    assert parsed[0].error.record == "r1"
    assert parsed[0].error.field == "tool_calls[call_1].arguments"


def test_unreadable_record_shapes_do_not_stop_the_run(tmp_path: Path) -> None:
    weird = ["a string", {"id": "r2", "messages": "not a list"},
             {"id": "r3", "messages": [{"role": "user", "content": 5}]}]
    path = logs.write_jsonl(tmp_path / "chat.jsonl", [logs.openai_record("r0"), *weird,
                                                     logs.openai_record("r4")])
    records = list(read_logs(path, fmt="openai"))
    assert [r.ok for r in records] == [True, False, False, False, True]
    assert records[2].error.field == "messages"


@pytest.fixture
def oi_logs() -> None:
    pytest.importorskip("openinference.instrumentation.langchain")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.common")


def test_openinference_hidden_documents_name_the_span_and_field(
        tmp_path: Path, oi_logs: None) -> None:
    """OpenInference's own redaction (hide_retrieval_documents) leaves ids and scores only."""
    path = logs.write_openinference(tmp_path / "oi.json", hide_retrieval_documents=True)
    (record,) = read_logs(path)
    assert not record.ok
    spans = json.loads(path.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"]
    retriever = next(s for s in spans if s["name"] == "ZelkRetriever")
    import base64
    span_id = base64.b64decode(retriever["spanId"]).hex()
    assert record.error.record == record.record_id == base64.b64decode(
        retriever["traceId"]).hex()
    assert record.error.field == f"span[{span_id}].retrieval.documents.0.document.content"
    assert "not captured" in record.error.message


def test_openinference_hidden_messages_are_an_error(tmp_path: Path, oi_logs: None) -> None:
    path = logs.write_openinference(tmp_path / "oi.jsonl", form="flat", hide_input_messages=True)
    (record,) = read_logs(path)
    assert not record.ok
    assert record.error.field.endswith(".llm.input_messages")


def test_otel_genai_without_content_capture_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """opentelemetry-util-genai's default (no content) logs ids only: each trace is reported."""
    pytest.importorskip("opentelemetry.util.genai")
    path = logs.write_otel_genai(tmp_path / "genai.json", monkeypatch, capture=False, runs=2)
    records = list(read_logs(path))
    assert len(records) == 2 and not any(r.ok for r in records)
    for record in records:
        assert record.error.record == record.record_id
        assert record.error.field.endswith("gen_ai.retrieval.documents")
        assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in record.error.message


def test_otel_genai_ids_only_documents_are_an_error(tmp_path: Path) -> None:
    """Documents as the convention requires them (id and score), without text."""
    spans = [
        {"name": "retrieval kb", "context": {"trace_id": "ab" * 16, "span_id": "01" * 8},
         "start_time": 1, "end_time": 2,
         "attributes": {"gen_ai.operation.name": "retrieval",
                        "gen_ai.retrieval.documents": json.dumps([{"id": "d0", "score": 0.9}])}},
        {"name": "chat m", "context": {"trace_id": "ab" * 16, "span_id": "02" * 8},
         "start_time": 3, "end_time": 4,
         "attributes": {"gen_ai.operation.name": "chat",
                        "gen_ai.input.messages": [{"role": "user", "parts": [
                            {"type": "text", "content": "Q?"}]}],
                        "gen_ai.output.messages": [{"role": "assistant", "parts": [
                            {"type": "text", "content": "A."}]}]}},
    ]
    path = logs.write_jsonl(tmp_path / "genai.jsonl", spans)
    (record,) = read_logs(path)
    assert record.format == "otel_genai"
    assert record.error.field == f"span[{'01' * 8}].gen_ai.retrieval.documents[0].content"


def test_langsmith_tool_run_without_outputs_is_an_error(tmp_path: Path) -> None:
    path = logs.write_langsmith(tmp_path / "runs.jsonl", runs=2)
    roots = [json.loads(line) for line in path.read_text().splitlines()]
    tool = next(c for c in roots[0]["child_runs"] if c["run_type"] == "tool")
    tool["outputs"] = None
    for child in roots[0]["child_runs"]:  # the final prompt no longer carries the result either
        if child["run_type"] == "llm":
            child["inputs"]["messages"][0] = [
                m for m in child["inputs"]["messages"][0] if m["id"][-1] != "ToolMessage"]
    logs.write_jsonl(path, roots)
    first, second = read_logs(path)
    assert second.ok and not first.ok
    assert first.error.record == roots[0]["id"]
    assert first.error.field == "tool_calls[call_1].output"
