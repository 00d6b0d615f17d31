"""The context view of the HTML report: the answer with its claims and their citations, every
source (and its sentences) highlighted by attention and by reliance side by side, and each tool
call with its output and ablation effects. It reads only the report (unit texts and spans), so
a saved report renders without its case file.

Every highlighted piece is a ``<mark class="unit" data-report=ANCHOR data-unit=ID
data-view=attention|reliance>`` and every claim a ``<span class="claim" data-report=ANCHOR
data-claim=INDEX>``: the browser test finds them in the rendered DOM by these attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from relyscope.report.columns import reliance_columns
from relyscope.report_model import ClaimReport, Report, UnitReport

_ENV = Environment(loader=PackageLoader("relyscope.report", "templates"),
                   autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True)

#: Highlight colours (r, g, b) of the two views; the alpha carries the score.
ATTENTION_RGB = (90, 130, 200)
RELIANCE_RGB = (217, 130, 43)

CSS = """
.ctx-pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.ctx-view{border:1px solid #ddd;border-radius:4px;padding:.5rem .7rem;line-height:1.7}
.ctx-view h5{margin:0 0 .3rem;font-size:.8rem;color:#555;font-weight:600}
.ctx-source{margin:.6rem 0 1rem}.ctx-source h4{margin:.2rem 0;font-size:.95rem}
mark.unit{color:inherit;border-radius:3px;padding:.05rem .1rem}
mark.unit.neg{outline:1px dashed #999;background:none}
.answer{font-size:1.05rem;line-height:1.8;border-left:4px solid #8aa9d6;padding-left:.7rem}
.claim{border-bottom:2px solid #999;padding:.05rem .1rem}
.claim.supported{background:#e3f3e3;border-color:#3a8a3a}
.claim.unsupported{background:#fbe3e3;border-color:#b03030}
.cites{font-size:.75rem;color:#555}.cites a{color:#2a5db0;text-decoration:none}
.tool-args{font-family:ui-monospace,monospace;font-size:.85rem}
.legend{font-size:.85rem;color:#555}
.swatch{display:inline-block;width:2.5rem;height:.7rem;vertical-align:middle;
border-radius:2px}
"""


@dataclass
class Piece:
    """One highlighted unit in one view."""

    unit: UnitReport
    score: float | None
    alpha: float


@dataclass
class SourceView:
    """A source (or a tool output) and its units, scored in both views."""

    id: str
    kind: str
    title: str | None
    attention: list[Piece] = field(default_factory=list)
    reliance: list[Piece] = field(default_factory=list)
    verdicts: list[tuple[str, str | None]] = field(default_factory=list)
    effects: dict[str, dict[str, float]] = field(default_factory=dict)


def reliance_method(report: Report) -> str | None:
    """The reliance column the context view colours by: the first column with a score."""
    for name in reliance_columns([report]):
        if any(u.reliance.get(name) is not None for u in report.units):
            return name
    return None


def _pieces(units: list[UnitReport], score: Any, scale: float) -> list[Piece]:
    pieces = []
    for unit in units:
        value = score(unit)
        alpha = 0.0 if value is None or value <= 0 or scale <= 0 else min(1.0, value / scale)
        pieces.append(Piece(unit, value, round(0.08 + 0.72 * alpha, 3) if alpha else 0.0))
    return pieces


def source_views(report: Report) -> tuple[list[SourceView], str | None]:
    """Sources and tool outputs in prompt order, each with its units in both views."""
    method = reliance_method(report)

    def attention(u: UnitReport) -> float | None:
        return u.provenance.get("attention_share")

    def reliance(u: UnitReport) -> float | None:
        return u.reliance.get(method) if method else None

    scale_att = max((v for u in report.units if (v := attention(u)) is not None), default=0.0)
    scale_rel = max((v for u in report.units if (v := reliance(u)) is not None), default=0.0)
    groups: dict[str, list[UnitReport]] = {}
    for unit in report.units:
        groups.setdefault(unit.parent or unit.id, []).append(unit)
    views = []
    tool_drops = report.methods.get("tools", {}).get("drops") or {}
    for key, units in groups.items():
        units.sort(key=lambda u: (u.char_span or (0, 0))[0])
        first = units[0]
        view = SourceView(id=key, kind="tool_output" if first.kind == "tool_output" else
                          "source", title=first.title,
                          attention=_pieces(units, attention, scale_att),
                          reliance=_pieces(units, reliance, scale_rel),
                          verdicts=[(u.id, u.verdict) for u in units],
                          effects=tool_drops.get(key, {}))
        views.append(view)
    return views, method


@dataclass
class AnswerPiece:
    text: str
    claim: ClaimReport | None = None


def answer_pieces(report: Report) -> list[AnswerPiece]:
    """The answer cut at its claims' char spans (text between claims stays plain)."""
    pieces: list[AnswerPiece] = []
    at = 0
    for claim in sorted(report.claims, key=lambda c: c.char_span[0]):
        start, end = claim.char_span
        if start < at:  # overlapping claims: the later one is listed, not highlighted twice
            continue
        if start > at:
            pieces.append(AnswerPiece(report.answer[at:start]))
        pieces.append(AnswerPiece(report.answer[start:end], claim))
        at = end
    if at < len(report.answer):
        pieces.append(AnswerPiece(report.answer[at:]))
    return pieces


def _rgba(rgb: tuple[int, int, int], alpha: float) -> str:
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha})"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def context_html(report: Report, anchor: str) -> Markup:
    """The context view of one report; `anchor` prefixes its element ids (unique per page)."""
    views, method = source_views(report)
    return Markup(_ENV.get_template("context.html.j2").render(
        r=report, anchor=anchor, views=views, method=method, answer=answer_pieces(report),
        att_rgb=ATTENTION_RGB, rel_rgb=RELIANCE_RGB, rgba=_rgba, num=_num))
