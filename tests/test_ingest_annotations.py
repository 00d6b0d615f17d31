"""Reports written back as OpenInference span annotations."""

from __future__ import annotations

import json
from pathlib import Path

from relyscope.batch.annotations import annotation_rows, write_annotations
from relyscope.case import Case
from relyscope.report_model import Report, UnitReport


def _case() -> Case:
    return Case.from_dict({
        "id": "trace-1", "query": "Q?", "answer": "A.",
        "sources": [{"id": "d0", "text": "Alpha."}, {"id": "d1", "text": "Beta."}],
        "tool_calls": [{"id": "call_1", "name": "t", "output": "42"}],
        "metadata": {"trace_id": "trace-1", "ingest": {
            "answer_span": "llm-span", "unit_spans": {"d0": "ret-span", "d1": "ret-span",
                                                      "call_1": "tool-span"}}}})


def _report() -> Report:
    return Report(case_id="trace-1", answer="A.", answer_logprob=-3.5, answer_tokens=2,
                  verdicts=["grounded"], units=[
                      UnitReport(id="d0", kind="source", reliance={"loo": 2.5, "ablation": 0.8},
                                 verdict="relied"),
                      UnitReport(id="d1", kind="source", reliance={"loo": 0.01, "ablation": None},
                                 verdict="unused"),
                      UnitReport(id="call_1", kind="tool_output", reliance={"tools": 0.3},
                                 verdict="consulted-not-relied"),
                      UnitReport(id="d0#1", kind="sentence", parent="d0",
                                 reliance={"loo": 1.0})])


def _annotations(rows: list[dict]) -> list[tuple[str, str | None, str, float | None, str | None]]:
    out = []
    for row in rows:
        (prefix,) = {k.rsplit(".", 1)[0] for k in row if k.startswith("annotations.")}
        out.append((row["span_id"], row["unit_id"], row[f"{prefix}.name"],
                    row.get(f"{prefix}.score"), row.get(f"{prefix}.label")))
    return out


def test_one_row_per_unit_per_method_plus_verdicts() -> None:
    rows = annotation_rows(_report(), _case())
    assert _annotations(rows) == [
        ("ret-span", "d0", "relyscope.reliance.loo", 2.5, None),
        ("ret-span", "d0", "relyscope.reliance.ablation", 0.8, None),
        ("ret-span", "d0", "relyscope.verdict", None, "relied"),
        ("ret-span", "d1", "relyscope.reliance.loo", 0.01, None),
        ("ret-span", "d1", "relyscope.verdict", None, "unused"),
        ("tool-span", "call_1", "relyscope.reliance.tools", 0.3, None),
        ("tool-span", "call_1", "relyscope.verdict", None, "consulted-not-relied"),
        ("ret-span", "d0#1", "relyscope.reliance.loo", 1.0, None),
        ("llm-span", None, "relyscope.verdict", -3.5, "grounded"),
    ]
    assert all(row["trace_id"] == "trace-1" for row in rows)


def test_annotation_indices_count_per_span_and_never_clash() -> None:
    rows = annotation_rows(_report(), _case())
    merged: dict[str, dict] = {}
    for row in rows:
        attrs = {k: v for k, v in row.items() if k.startswith("annotations.")}
        assert not set(attrs) & set(merged.get(row["span_id"], {}))
        merged.setdefault(row["span_id"], {}).update(attrs)
    names = {span: sorted(k for k in attrs if k.endswith(".name"))
             for span, attrs in merged.items()}
    assert names["ret-span"] == [f"annotations.{i}.annotation.name" for i in range(6)]
    assert names["llm-span"] == ["annotations.0.annotation.name"]
    assert merged["tool-span"]["annotations.1.annotation.label"] == "consulted-not-relied"


def test_without_a_case_every_row_lands_on_the_given_or_case_span() -> None:
    rows = annotation_rows(_report())
    assert {row["span_id"] for row in rows} == {"trace-1"}
    rows = annotation_rows(_report(), unit_spans={"d0": "s0"}, answer_span="ans")
    assert {row["span_id"] for row in rows} == {"s0", "ans"}


def test_write_annotations_appends_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "annotations.jsonl"
    rows = annotation_rows(_report(), _case())
    assert write_annotations(rows[:2], path) == 2
    write_annotations(rows[2:], path)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    write_annotations(rows[:1], path, append=False)
    assert len(path.read_text().splitlines()) == 1
