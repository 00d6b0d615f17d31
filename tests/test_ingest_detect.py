"""Auto-detection picks the right reader for each kind of log file."""

from __future__ import annotations

import json
from pathlib import Path

import ingest_logs as logs
import pytest

from relyscope.ingest import detect_format, log_files, read_logs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("openinference.instrumentation.langchain")
    pytest.importorskip("opentelemetry.util.genai")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.common")
    out = tmp_path_factory.mktemp("detect")
    with pytest.MonkeyPatch.context() as monkeypatch:
        genai = logs.write_otel_genai(out / "b.json", monkeypatch)
    return {
        "openai": logs.write_jsonl(out / "a.jsonl", [logs.openai_record()]),
        "otel_genai": genai,
        "openinference": logs.write_openinference(out / "c.json"),
        "openinference-flat": logs.write_openinference(out / "d.jsonl", form="flat"),
        "openinference-lines": logs.write_openinference(out / "e.jsonl", form="otlp-lines"),
        "langsmith": logs.write_langsmith(out / "f.jsonl"),
    }


@pytest.mark.parametrize("name,expected", [
    ("openai", "openai"), ("otel_genai", "otel_genai"), ("openinference", "openinference"),
    ("openinference-flat", "openinference"), ("openinference-lines", "openinference"),
    ("langsmith", "langsmith")])
def test_detects_each_format(files: dict[str, Path], name: str, expected: str) -> None:
    assert detect_format(files[name]) == expected
    assert [r.format for r in read_logs(files[name])] == [expected]


def test_a_directory_reads_every_file_with_its_own_reader(files: dict[str, Path]) -> None:
    directory = files["openai"].parent
    assert log_files(directory) == sorted(files.values())
    records = list(read_logs(directory))
    assert [r.format for r in records] == ["openai", "otel_genai", "openinference",
                                           "openinference", "openinference", "langsmith"]
    assert all(r.ok for r in records)


def test_request_response_log_is_openai(tmp_path: Path) -> None:
    record = logs.openai_record("batch-1")
    answer = record["messages"].pop()
    logged = {"custom_id": "batch-1", "request": {"body": {"messages": record["messages"]}},
              "documents": record["documents"],
              "response": {"body": {"choices": [{"message": answer}]}}}
    path = logs.write_jsonl(tmp_path / "batch.jsonl", [logged])
    assert detect_format(path) == "openai"
    (read,) = read_logs(path)
    assert read.record_id == "batch-1"
    assert logs.essence(read.case) == logs.EXPECTED


def test_unknown_format_is_one_error_and_the_next_file_is_read(tmp_path: Path) -> None:
    odd = tmp_path / "a.json"
    odd.write_text(json.dumps({"rows": [1, 2, 3]}))
    good = logs.write_jsonl(tmp_path / "b.jsonl", [logs.openai_record()])
    records = list(read_logs([odd, good]))
    assert [r.ok for r in records] == [False, True]
    assert records[0].record_id == str(odd) and "unknown log format" in str(records[0].error)


def test_detection_skips_bad_lines_and_non_llm_spans(tmp_path: Path) -> None:
    chain = {"context": {"trace_id": "cd" * 16, "span_id": "03" * 8}, "name": "root",
             "attributes": {"http.method": "GET"}}
    path = logs.write_jsonl(tmp_path / "x.jsonl", ["{oops", chain, logs.openai_record()])
    assert detect_format(path) == "openai"


def test_an_explicit_format_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        list(read_logs([], fmt="csv"))  # type: ignore[arg-type]
