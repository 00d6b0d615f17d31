"""JSON, JSONL and Markdown writers for audit reports. JSON is the canonical form."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from relyscope.case import field_path
from relyscope.errors import CaseError, json_error
from relyscope.report.columns import reliance_columns
from relyscope.report_model import Report


def write_json(report: Report, path: str | Path) -> None:
    """Write atomically: a reader never sees a half-written report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)


def jsonl_line(report: Report) -> str:
    return json.dumps(report.to_dict(), separators=(",", ":")) + "\n"


def read_reports(path: str | Path) -> list[Report]:
    """Reports from a report .json, a reports .jsonl, or an audit-logs results .jsonl (its ok
    lines). Anything else is a `CaseError` naming the line and the field."""
    path = Path(path)
    if path.suffix != ".jsonl":
        return [_report(path.read_bytes(), str(path))]
    reports = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                report = _report(line, f"{path}:{number}")
                if report is not None:
                    reports.append(report)
    return reports


def _report(data: bytes, record: str) -> Report | None:
    """One report (None for an audit-logs error line: it has none)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CaseError("", f"not a report: not valid UTF-8 ({err})", record=record) from None
    except json.JSONDecodeError as err:
        raise CaseError("", json_error(err, what="not a report: not valid JSON"),
                        record=record) from None
    if isinstance(value, dict) and "record_id" in value and "case_id" not in value:
        if value.get("status") != "ok":  # an audit-logs results line
            return None
        value = value.get("report")
    if not isinstance(value, dict):
        raise CaseError("", f"not a report: a report is a JSON object, got "
                            f"{type(value).__name__}", record=record)
    try:
        return Report.from_dict(value)
    except ValidationError as err:
        first = err.errors()[0]
        message = f"{first['msg']} (not a valid report)".replace("\n", " ")
        if first["type"] == "missing":
            message = "missing: not a report written by relyscope audit or audit-logs"
        raise CaseError(field_path(first["loc"]), message, record=record) from None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(reports: Iterable[Report]) -> str:
    """A compact Markdown summary: one table of units per report."""
    parts: list[str] = []
    listed = list(reports)
    columns = reliance_columns(listed)
    for report in listed:
        status = " (partial)" if report.partial else ""
        parts.append(f"### {report.case_id}{status}\n")
        parts.append(f"Answer: {report.answer}\n")
        parts.append(f"Answer log-prob: {report.answer_logprob:.3f} over "
                     f"{report.answer_tokens} tokens. Verdicts: "
                     f"{', '.join(report.verdicts) or 'none'}.\n")
        header = ["unit", "kind", "attention share", *columns, "verdict"]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        for unit in report.units:
            cells = [unit.id, unit.kind, _fmt(unit.provenance.get("attention_share"))]
            cells += [_fmt(unit.reliance.get(m)) for m in columns]
            cells.append(unit.verdict or "—")
            parts.append("| " + " | ".join(cells) + " |")
        faith = report.faithfulness
        if faith:
            parts.append("\n| method | top-1 drop | top-3 drop | sufficiency | LDS | "
                         "ρ vs attention |")
            parts.append("|---|---|---|---|---|---|")
            for name, entry in faith.items():
                topk = entry.get("topk_drop", {})
                parts.append(f"| {name} | {_fmt(topk.get('1'))} | {_fmt(topk.get('3'))} | "
                             f"{_fmt(entry.get('sufficiency'))} | {_fmt(entry.get('lds'))} | "
                             f"{_fmt(entry.get('spearman_vs_attention'))} |")
        if report.claims:
            parts.append(claims_markdown(report))
        cost = report.cost
        parts.append(f"\nCost: {cost.get('forward_passes')} forward passes, "
                     f"{_fmt(cost.get('seconds'), 1)} s.")
        for warning in report.warnings:
            parts.append(f"\n> warning: {warning}")
        for method, error in report.errors.items():
            parts.append(f"\n> {method} failed: {error}")
        parts.append("")
    return "\n".join(parts)


def claims_markdown(report: Report) -> str:
    """One row per claim of the answer: its span, top units, citations and verdicts."""
    rows = ["\n| claim | chars | top units (reliance) | citations | verdict | claim verdicts |",
            "|---|---|---|---|---|---|"]
    for claim in report.claims:
        top = ", ".join(f"{uid} ({_fmt(claim.reliance.get(uid))})" for uid in claim.top_units)
        verdict = claim.verdict or "—"
        if claim.reading:
            verdict += f" ({claim.reading})"
        text = claim.text.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {text} | {claim.char_span[0]}-{claim.char_span[1]} | {top or '—'} | "
                    f"{', '.join(claim.citations) or '—'} | {verdict} | "
                    f"{', '.join(claim.verdicts) or '—'} |")
    return "\n".join(rows)
