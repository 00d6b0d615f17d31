"""One known conversation, logged in every format by real instrumentation, reads back the same."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ingest_logs as logs
import pytest

from relyscope.ingest import read_logs

FORMS = ["openai", "openinference-otlp", "openinference-otlp-lines", "openinference-flat",
         "otel_genai", "langsmith"]
NEEDS = {"openinference": ("openinference.instrumentation.langchain",
                           "opentelemetry.exporter.otlp.proto.common"),
         "otel_genai": ("opentelemetry.util.genai", "opentelemetry.exporter.otlp.proto.common")}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """form -> a log holding the conversation twice (two traces / records), written once."""
    out = tmp_path_factory.mktemp("logs")
    made: dict[str, Path] = {}

    def write(form: str) -> Path:
        for module in NEEDS.get(form.split("-")[0], ()):
            pytest.importorskip(module)
        if form not in made:
            made[form] = _write(form, out)
        return made[form]

    return write


def _write(form: str, out: Path) -> Path:
    if form == "openai":
        return logs.write_jsonl(out / "chat.jsonl", [logs.openai_record("r1"),
                                                     logs.openai_record("r2")])
    if form == "otel_genai":
        with pytest.MonkeyPatch.context() as monkeypatch:
            return logs.write_otel_genai(out / "genai.json", monkeypatch, runs=2)
    if form == "langsmith":
        return logs.write_langsmith(out / "runs.jsonl", runs=2)
    shape = form.removeprefix("openinference-")
    suffix = ".json" if shape == "otlp" else ".jsonl"
    return logs.write_openinference(out / f"{shape}{suffix}", runs=2, form=shape)


@pytest.mark.parametrize("form", FORMS)
def test_each_format_yields_the_same_case(logged: Callable[[str], Path], form: str) -> None:
    records = list(read_logs(logged(form)))
    assert [r.error for r in records] == [None, None]
    for record in records:
        assert logs.essence(record.case) == logs.EXPECTED
    assert len({r.record_id for r in records}) == 2


def _span_kinds(path: Path) -> dict[str, str]:
    """span id (hex) -> openinference span kind, read straight from the OTLP JSON."""
    import base64

    kinds = {}
    for resource in json.loads(path.read_text())["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                attrs = {a["key"]: a["value"].get("stringValue") for a in span["attributes"]}
                kinds[base64.b64decode(span["spanId"]).hex()] = attrs.get(
                    "openinference.span.kind")
    return kinds


def test_openinference_cases_are_keyed_by_trace_and_span_ids(logged: Callable[[str], Path]) -> None:
    path = logged("openinference-otlp")
    kinds = _span_kinds(path)
    for record in read_logs(path):
        case = record.case
        assert case.id == record.record_id and len(case.id) == 32
        ingest = case.metadata["ingest"]
        assert kinds[ingest["answer_span"]] == "LLM"
        assert {kinds[ingest["unit_spans"][f"d{i}"]] for i in range(5)} == {"RETRIEVER"}
        assert kinds[ingest["unit_spans"]["call_1"]] == "TOOL"


KINDS = {"LLM": "llm", "RETRIEVER": "retriever", "TOOL": "tool",  # OpenInference span kinds
         "chat": "llm", "retrieval": "retriever", "execute_tool": "tool"}  # GenAI operations


def _written_spans(path: Path) -> list[tuple[str, str, str]]:
    """(trace id, span id, kind) of every span in the file, hex ids, in the order written."""
    import base64

    def hex_id(value: str) -> str:
        return base64.b64decode(value).hex()

    if path.suffix == ".jsonl":  # Phoenix flat form: hex ids as written
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [(r["context"]["trace_id"], r["context"]["span_id"],
                 KINDS.get(r["span_kind"], "other")) for r in rows]
    spans = []
    for resource in json.loads(path.read_text())["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                attrs = {a["key"]: a["value"].get("stringValue")
                         for a in span.get("attributes", [])}
                kind = attrs.get("openinference.span.kind") or attrs.get("gen_ai.operation.name")
                spans.append((hex_id(span["traceId"]), hex_id(span["spanId"]),
                              KINDS.get(kind or "", "other")))
    return spans


def test_flat_and_otlp_forms_name_the_spans_the_writer_wrote(
        logged: Callable[[str], Path]) -> None:
    """Phoenix-style hex ids and protobuf's base64 ids decode to the ids in the file: the
    answer is the trace's last LLM span, the passages its retriever span, the tool its tool
    span."""
    for form in ("openinference-otlp", "openinference-flat", "otel_genai"):
        path = logged(form)
        written = _written_spans(path)
        records = list(read_logs(path))
        assert len(records) == 2
        for record in records:
            trace = record.case.metadata["ingest"]["record_id"]
            assert trace == record.record_id
            ours = [(span, kind) for t, span, kind in written if t == trace]
            by_kind = {k: [s for s, kind in ours if kind == k] for k in ("llm", "retriever",
                                                                          "tool")}
            assert [len(by_kind[k]) for k in ("llm", "retriever", "tool")] == [2, 1, 1], form
            ingest = record.case.metadata["ingest"]
            assert ingest["answer_span"] == by_kind["llm"][-1], form
            want = {f"d{i}": by_kind["retriever"][0] for i in range(5)}
            want["call_1"] = by_kind["tool"][0]
            assert ingest["unit_spans"] == want, form


def test_langsmith_cases_use_run_ids(logged: Callable[[str], Path]) -> None:
    roots = [json.loads(line) for line in logged("langsmith").read_text().splitlines()]
    records = list(read_logs(logged("langsmith")))
    assert [r.record_id for r in records] == [root["id"] for root in roots]
    tool_run = next(c for c in roots[0]["child_runs"] if c["run_type"] == "tool")
    assert records[0].case.metadata["ingest"]["unit_spans"]["call_1"] == tool_run["id"]
