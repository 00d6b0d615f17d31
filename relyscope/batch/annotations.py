"""Audit results written back as OpenInference span annotations, for Phoenix-style UIs.

One JSONL row per annotation: each unit's reliance score under each method, each unit's verdict,
and the audit's verdicts on the answer. A row names the span it annotates (the RETRIEVER / TOOL
span, run or record the unit came from, as the reader noted in ``case.metadata["ingest"]``; the
answer's span otherwise) and carries ``annotations.<i>.annotation.{name,score,label,
explanation,annotator_kind,identifier}``, where `i` counts the annotations of that span across
the rows, so merging a span's rows gives its full, unclashing attribute set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from relyscope.case import Case
from relyscope.report_model import Report

PREFIX = "relyscope"
ANNOTATOR_KIND = "CODE"


def annotation_rows(report: Report, case: Case | None = None, *,
                    unit_spans: Mapping[str, str] | None = None,
                    answer_span: str | None = None) -> list[dict[str, Any]]:
    """Annotation rows of one report. Spans come from `case` (as ingested) unless given."""
    ingest: dict[str, Any] = dict((case.metadata.get("ingest") or {}) if case else {})
    unit_spans = dict(unit_spans if unit_spans is not None else ingest.get("unit_spans") or {})
    answer_span = answer_span or ingest.get("answer_span") or report.case_id
    trace_id = case.metadata.get("trace_id") if case else None
    counts: dict[str, int] = defaultdict(int)
    rows: list[dict[str, Any]] = []

    def add(span: str, unit: str | None, name: str, *, score: float | None = None,
            label: str | None = None, explanation: str) -> None:
        index = counts[span]
        counts[span] += 1
        key = f"annotations.{index}.annotation"
        row: dict[str, Any] = {"span_id": span, "case_id": report.case_id, "unit_id": unit}
        if trace_id:
            row["trace_id"] = trace_id
        row[f"{key}.name"] = name
        if score is not None:
            row[f"{key}.score"] = score
        if label is not None:
            row[f"{key}.label"] = label
        row[f"{key}.explanation"] = explanation
        row[f"{key}.annotator_kind"] = ANNOTATOR_KIND
        row[f"{key}.identifier"] = f"{report.case_id}:{unit or 'answer'}:{name}"
        rows.append(row)

    for unit in report.units:
        span = unit_spans.get(unit.id) or unit_spans.get(unit.parent or "") or answer_span
        what = f"{unit.kind.replace('_', ' ')} {unit.id}"
        for method, score in unit.reliance.items():
            if score is not None:
                add(span, unit.id, f"{PREFIX}.reliance.{method}", score=float(score),
                    explanation=f"{method} reliance of the answer on {what}")
        if unit.verdict:
            add(span, unit.id, f"{PREFIX}.verdict", label=unit.verdict,
                explanation=f"verdict for {what}")
    add(answer_span, None, f"{PREFIX}.verdict", score=report.answer_logprob,
        label=",".join(report.verdicts) or None,
        explanation="audit verdicts for the answer; score: answer log-prob (nats)"
                    + (" (partial audit)" if report.partial else ""))
    return rows


def write_annotations(rows: Iterable[Mapping[str, Any]], path: str | Path, *,
                      append: bool = True) -> int:
    """Write rows as JSONL in one write (appending by default); returns how many."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    with Path(path).open("a" if append else "w", encoding="utf-8") as handle:
        handle.write("".join(lines))
    return len(lines)
