"""The summary of an `audit-logs` results file, as a self-contained HTML page (no scripts).

Over all audited records: the share of answers `grounded` / `parametric`, the sources (by id)
most often relied on and most often consulted but not relied on, reliance per tool name, and
the error lines counted by reason. A unit's reliance here is the score of the first voting
method (registry priority order: leave-one-out, then tool ablation, then context ablation)
that ran, in nats; a source counts as relied on when its verdict says so. Sentence units
count towards their source.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from relyscope.audits.registry import voting_methods

RELIED = frozenset({"relied", "relied-not-attended"})
TOP = 15
ERROR_EXAMPLES = 50


@dataclass
class UnitStats:
    """How one source id (or tool name) fared across the records it appeared in."""

    name: str
    seen: int = 0
    relied: int = 0
    consulted_not_relied: int = 0
    reliance: list[float] = field(default_factory=list)

    @property
    def mean_reliance(self) -> float | None:
        return sum(self.reliance) / len(self.reliance) if self.reliance else None

    def add(self, verdicts: Iterable[str | None], reliance: float | None) -> None:
        verdicts = set(verdicts)
        self.seen += 1
        if verdicts & RELIED:
            self.relied += 1
        elif "consulted-not-relied" in verdicts:
            self.consulted_not_relied += 1
        if reliance is not None:
            self.reliance.append(reliance)


@dataclass
class LogSummary:
    records: int = 0
    audited: int = 0
    partial: int = 0
    grounded: int = 0
    parametric: int = 0
    sources: dict[str, UnitStats] = field(default_factory=dict)
    tools: dict[str, UnitStats] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[dict[str, Any]] = field(default_factory=list)

    def share(self, count: int) -> float | None:
        return count / self.audited if self.audited else None

    def most_relied(self) -> list[UnitStats]:
        return sorted((s for s in self.sources.values() if s.relied),
                      key=lambda s: (-s.relied, -(s.mean_reliance or 0.0), s.name))[:TOP]

    def most_idle(self) -> list[UnitStats]:
        return sorted((s for s in self.sources.values() if s.consulted_not_relied),
                      key=lambda s: (-s.consulted_not_relied, s.mean_reliance or 0.0,
                                     s.name))[:TOP]


def summarise(lines: Iterable[dict[str, Any]]) -> LogSummary:
    """Aggregate result lines (as `relyscope.batch.results` writes them)."""
    summary = LogSummary()
    for line in lines:
        summary.records += 1
        if line.get("status") != "ok":
            error = line.get("error") or {}
            summary.errors[error.get("reason") or "unknown"] += 1
            if len(summary.error_examples) < ERROR_EXAMPLES:
                summary.error_examples.append({"record_id": line.get("record_id"),
                                               "location": line.get("location"), **error})
            continue
        report = line["report"]
        summary.audited += 1
        summary.partial += bool(report.get("partial"))
        verdicts = report.get("verdicts") or []
        summary.grounded += "grounded" in verdicts
        summary.parametric += "parametric" in verdicts
        tools = (line.get("ingest") or {}).get("tools") or {}
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for unit in report.get("units") or []:
            if unit["kind"] == "tool_output":
                key = ("tool", tools.get(unit["id"]) or unit["id"])
            else:
                key = ("source", unit.get("parent") or unit["id"])
            grouped.setdefault(key, []).append(unit)
        for (kind, name), units in grouped.items():
            table = summary.tools if kind == "tool" else summary.sources
            scores = [s for s in map(_reliance, units) if s is not None]
            table.setdefault(name, UnitStats(name)).add(
                (u.get("verdict") for u in units), max(scores) if scores else None)
    return summary


def _reliance(unit: dict[str, Any]) -> float | None:
    reliance = unit.get("reliance") or {}
    return next((float(reliance[m]) for m in voting_methods() if reliance.get(m) is not None),
                None)


_ENV = Environment(autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters["num"] = lambda v, d=2: "—" if v is None else f"{v:.{d}f}"
_ENV.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"

_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relyscope audit-logs summary</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.25rem .6rem;
border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}
.num{font-variant-numeric:tabular-nums;text-align:right}.note{color:#666;font-size:.9rem}
</style></head><body>
<h1>relyscope: logged answers audited</h1>
<p>{{ s.records }} records: {{ s.audited }} audited ({{ s.partial }} partial),
{{ s.records - s.audited }} errors.</p>
<table><tr><th>answers</th><th class="num">count</th><th class="num">share of audited</th></tr>
<tr><td>grounded</td><td class="num">{{ s.grounded }}</td>
<td class="num">{{ s.share(s.grounded)|pct }}</td></tr>
<tr><td>parametric</td><td class="num">{{ s.parametric }}</td>
<td class="num">{{ s.share(s.parametric)|pct }}</td></tr>
<tr><td>neither</td><td class="num">{{ s.audited - s.grounded - s.parametric }}</td>
<td class="num">{{ s.share(s.audited - s.grounded - s.parametric)|pct }}</td></tr></table>
<p class="note">Reliance: leave-one-out drop of the answer's log-prob in nats (tool ablation,
then context ablation, where leave-one-out did not run), averaged over the records a unit
appears in.</p>
{% for title, rows, count in [
   ("Most relied-on sources", s.most_relied(), "relied"),
   ("Most consulted-not-relied sources", s.most_idle(), "consulted_not_relied")] %}
<h2>{{ title }}</h2>
{% if rows %}
<table><tr><th>source id</th><th class="num">{{ count.replace("_", " ") }}</th>
<th class="num">retrieved</th><th class="num">mean reliance</th></tr>
{% for r in rows %}
<tr><td>{{ r.name }}</td><td class="num">{{ r[count] }}</td><td class="num">{{ r.seen }}</td>
<td class="num">{{ r.mean_reliance|num }}</td></tr>
{% endfor %}</table>
{% else %}<p class="note">none</p>{% endif %}
{% endfor %}
<h2>Reliance per tool</h2>
{% if s.tools %}
<table><tr><th>tool</th><th class="num">calls</th><th class="num">relied</th>
<th class="num">share relied</th><th class="num">mean reliance</th></tr>
{% for t in s.tools.values()|sort(attribute="name") %}
<tr><td>{{ t.name }}</td><td class="num">{{ t.seen }}</td><td class="num">{{ t.relied }}</td>
<td class="num">{{ (t.relied / t.seen)|pct }}</td>
<td class="num">{{ t.mean_reliance|num }}</td></tr>
{% endfor %}</table>
{% else %}<p class="note">no tool calls</p>{% endif %}
<h2>Errors</h2>
{% if s.errors %}
<table><tr><th>reason</th><th class="num">records</th></tr>
{% for reason, n in s.errors.most_common() %}
<tr><td>{{ reason }}</td><td class="num">{{ n }}</td></tr>
{% endfor %}</table>
<table><tr><th>record</th><th>location</th><th>field</th><th>message</th></tr>
{% for e in s.error_examples %}
<tr><td>{{ e.record_id }}</td><td>{{ e.location }}</td><td>{{ e.field }}</td>
<td>{{ e.message }}</td></tr>
{% endfor %}</table>
{% if s.records - s.audited > s.error_examples|length %}
<p class="note">first {{ s.error_examples|length }} errors shown</p>{% endif %}
{% else %}<p class="note">none</p>{% endif %}
</body></html>
""")


def render_summary_html(summary: LogSummary) -> str:
    return _TEMPLATE.render(s=summary)


def write_summary_html(lines: Iterable[dict[str, Any]], path: str | Path) -> LogSummary:
    """Summarise result lines into a self-contained HTML page, written atomically."""
    summary = summarise(lines)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(render_summary_html(summary), encoding="utf-8")
    os.replace(staging, path)
    return summary
