"""A self-contained HTML report (no scripts, no network): the context view (the answer and its
claims, every source highlighted by attention and by reliance, tool calls; report/context.py),
attention next to reliance per unit, the causal-tracing layer profile, verdicts and the audit's
own faithfulness."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from relyscope.report.columns import reliance_columns
from relyscope.report.context import CSS as CONTEXT_CSS
from relyscope.report.context import context_html
from relyscope.report.head_map import head_map_html
from relyscope.report_model import Report

_ENV = Environment(autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True)
_ENV.globals.update(context_html=context_html, context_css=Markup(CONTEXT_CSS))

_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relyscope report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.25rem .6rem;
border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}th{background:#f4f4f4}
.bar{display:inline-block;height:.8rem;vertical-align:middle}.att{background:#8aa9d6}
.rel{background:#d9822b}.neg{background:#aaa}.num{font-variant-numeric:tabular-nums}
.verdict{font-weight:600}.note{color:#666;font-size:.9rem}.warn{color:#a33}
section{margin-bottom:3rem}
{{ context_css }}
</style></head><body>
<h1>relyscope audit report</h1>
<p class="note">Provenance (attention: where the answer looked) is shown next to reliance
(interventions: what the answer depended on). Bars are scaled per column.</p>
{% for r in reports %}
<section>
<h2>{{ r.case_id }}{% if r.partial %} <span class="warn">(partial)</span>{% endif %}</h2>
{{ context_html(r, "r" ~ loop.index) }}
<h3>Scores per unit</h3>
<p><b>Answer log-prob:</b> {{ "%.3f"|format(r.answer_logprob) }} over {{ r.answer_tokens }} tokens
· <b>Verdicts:</b> <span class="verdict">{{ r.verdicts|join(", ") or "none" }}</span></p>
<table><tr><th>unit</th><th>kind</th><th>attention share (provenance)</th>
{% for m in methods %}<th>{{ m }} (reliance)</th>{% endfor %}<th>verdict</th></tr>
{% for u in r.units %}
<tr><td>{{ u.id }}</td><td>{{ u.kind }}</td>
{% set share = u.provenance.get("attention_share") %}
<td class="num">{{ bar(share, scales[r.case_id]["attention_share"], "att") }}</td>
{% for m in methods %}
<td class="num">{{ bar(u.reliance.get(m), scales[r.case_id][m], "rel") }}</td>
{% endfor %}
<td class="verdict">{{ u.verdict or "—" }}</td></tr>
{% endfor %}
</table>
{% set profiles = r.methods.get("tracing", {}).get("layer_profiles", {}) %}
{% if profiles %}
<h3>Causal tracing: where each top unit is read (indirect effect by layer window)</h3>
{% for uid, profile in profiles.items() %}
<p><b>{{ uid }}</b></p>
<table><tr><th>layers</th><th>indirect effect (nats recovered)</th></tr>
{% set top = profile|map(attribute="indirect_effect")|map("abs")|max %}
{% for row in profile %}
<tr><td>{{ row.layers[0] }}–{{ row.layers[1] }}</td>
<td class="num">{{ bar(row.indirect_effect, top, "rel") }}</td></tr>
{% endfor %}
</table>
{% endfor %}
{% endif %}
{{ head_maps(r) }}
{% if r.faithfulness %}
<h3>Faithfulness of each method</h3>
<table><tr><th>method</th><th>top-1 drop</th><th>top-3 drop</th><th>comprehensiveness</th>
<th>sufficiency</th><th>LDS</th><th>ρ vs attention</th></tr>
{% for name, f in r.faithfulness.items() %}
<tr><td>{{ name }}</td><td class="num">{{ num(f.topk_drop.get("1")) }}</td>
<td class="num">{{ num(f.topk_drop.get("3")) }}</td>
<td class="num">{{ num(f.comprehensiveness) }}</td>
<td class="num">{{ num(f.sufficiency) }}</td><td class="num">{{ num(f.lds) }}</td>
<td class="num">{{ num(f.get("spearman_vs_attention")) }}</td></tr>
{% endfor %}
</table>
{% endif %}
<p class="note">Cost: {{ r.cost.get("forward_passes") }} forward passes,
{{ num(r.cost.get("seconds"), 1) }} s · model {{ r.settings.get("model", {}).get("id") }}
· tool mode {{ r.settings.get("tool_mode") }}</p>
{% for w in r.warnings %}<p class="warn">warning: {{ w }}</p>{% endfor %}
{% for m, e in r.errors.items() %}<p class="warn">{{ m }} failed: {{ e }}</p>{% endfor %}
</section>
{% endfor %}
</body></html>
""")

def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _bar(value: float | None, scale: float, kind: str) -> str:
    from markupsafe import Markup, escape

    if value is None:
        return Markup("—")
    width = 0 if not scale else min(120, int(round(120 * abs(value) / scale)))
    css = kind if value >= 0 else "neg"
    return Markup(f'<span class="bar {css}" style="width:{width}px"></span> ') + escape(
        _num(value))


def render_html(reports: Sequence[Report]) -> str:
    methods = reliance_columns(reports)
    scales: dict[str, dict[str, float]] = {}
    for r in reports:
        columns = {m: [u.reliance.get(m) for u in r.units] for m in methods}
        columns["attention_share"] = [u.provenance.get("attention_share") for u in r.units]
        scales[r.case_id] = {m: max((abs(v) for v in vs if v is not None), default=0.0)
                             for m, vs in columns.items()}
    return _TEMPLATE.render(reports=reports, methods=methods, scales=scales, bar=_bar, num=_num,
                            head_maps=head_map_html)


def write_html(reports: Sequence[Report], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(render_html(reports), encoding="utf-8")
    os.replace(staging, path)
