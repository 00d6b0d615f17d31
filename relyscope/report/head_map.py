"""The HTML section of the head-importance method: a layer x head map of drops per unit."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from relyscope.report_model import Report


def _cell(drop: float, top: float) -> str:
    """A cell shaded by the drop's share of the map's largest drop (grey when negative)."""
    share = 0.0 if top <= 0 else min(1.0, abs(drop) / top)
    colour = f"rgba(217,130,43,{share:.2f})" if drop >= 0 else f"rgba(150,150,150,{share:.2f})"
    return f'<td class="num" style="background:{colour}">{drop:.2f}</td>'


def _unit_map(uid: str, entry: dict[str, Any]) -> str:
    windows = ", ".join(f"L{w['layers'][0]}–{w['layers'][1]}: {w['drop']:.2f}"
                        for w in entry.get("windows", []))
    rows = entry.get("drops", [])
    parts = [f"<p><b>{escape(uid)}</b> · window drops {escape(windows)}</p>"]
    if rows:
        top = max((abs(d) for row in rows for d in row), default=0.0)
        heads = "".join(f"<th>h{h}</th>" for h in range(len(rows[0])))
        parts.append(f"<table><tr><th>layer</th>{heads}</tr>")
        for layer, row in zip(entry.get("layers", []), rows, strict=False):
            parts.append(f"<tr><th>L{layer}</th>{''.join(_cell(d, top) for d in row)}</tr>")
        parts.append("</table>")
    return "".join(parts)


def head_map_html(report: Report) -> Markup:
    """The section for one report, or nothing when head importance did not run."""
    maps = report.methods.get("heads", {}).get("maps") or {}
    if not maps:
        return Markup("")
    body = "".join(_unit_map(uid, entry) for uid, entry in maps.items())
    return Markup("<h3>Head importance: drop (nats) when one head's attention from the answer "
                  "to the unit is knocked out</h3>" + body)
