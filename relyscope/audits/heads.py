"""Head importance: which attention heads carry the answer's reliance on its top units.

For the units leave-one-out ranks highest, attention from the answer to the unit is knocked
out (relyscope.models.knockout) first per layer window, then per (layer, head) inside the
windows whose knockout dropped the answer's log-prob the most, so the cost stays bounded:
windows + kept windows x window x heads passes per unit. The result is a small layer x head
map of drops per unit (nats); a unit's score is its largest single-head drop.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from relyscope.audits.base import ANSWER, AuditContext, Probe
from relyscope.audits.knockout import answer_queries
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome
from relyscope.models import Knockout, Span


class HeadSettings(MethodSettings):
    top_units: int = Field(default=1, ge=1, le=16)  # units (by leave-one-out drop) mapped
    window: int = Field(default=5, ge=1)  # layers knocked out together in the first sweep
    windows_kept: int = Field(default=1, ge=1)  # windows whose heads are mapped one by one
    min_window_drop: float = 0.0  # a window is mapped only when its drop is above this
    batch: int = Field(default=8, ge=1, le=256)  # knockouts per model call


class HeadImportance(AuditMethod):
    name = "heads"
    kind = "localisation"
    votes = False
    default = False
    priority = 50
    column = 50
    Settings = HeadSettings

    def plan(self, ctx: AuditContext) -> list[Probe]:
        return [(ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids]

    def compute(self, ctx: AuditContext, settings: HeadSettings) -> Outcome:
        full = ctx.full_score().total
        scored = ctx.score(self.plan(ctx))
        loo = {uid: full - scored[(ctx.removal([uid]), ANSWER)].total for uid in ctx.unit_ids}
        spans = {uid: ctx.full.unit_token_spans.get(uid, (0, 0)) for uid in ctx.unit_ids}
        ranked = [uid for uid in sorted(loo, key=lambda u: -loo[u])
                  if spans[uid][1] > spans[uid][0]]
        scores: dict[str, float | None] = dict.fromkeys(ctx.unit_ids)
        maps: dict[str, Any] = {}
        cut = None
        for uid in ranked[:settings.top_units]:
            if (cut := ctx.budget.check(self._passes(ctx, settings))) is not None:
                break
            maps[uid] = self._unit_map(ctx, settings, spans[uid], full)
            drops = [d for row in maps[uid]["drops"] for d in row]
            scores[uid] = max(drops) if drops else None
        extras: dict[str, Any] = {
            "maps": maps, "window": settings.window, "heads": ctx.lm.num_heads,
            "units_by": "leave-one-out drop", "leave_one_out": loo,
            "queries": "the answer's positions", "score": "largest single-head drop (nats)"}
        return Outcome(scores, extras, cut)

    @staticmethod
    def _passes(ctx: AuditContext, settings: HeadSettings) -> int:
        layers = ctx.lm.num_layers
        windows = -(-layers // settings.window)
        return windows + settings.windows_kept * settings.window * ctx.lm.num_heads

    @staticmethod
    def _unit_map(ctx: AuditContext, settings: HeadSettings, span: Span, full: float
                  ) -> dict[str, Any]:
        answer = answer_queries(ctx)
        n_layers, n_heads = ctx.lm.num_layers, ctx.lm.num_heads
        windows = [tuple(range(first, min(n_layers, first + settings.window)))
                   for first in range(0, n_layers, settings.window)]
        values = ctx.knockout_logprobs([Knockout(answer, (span,), layers=w) for w in windows],
                                       batch=settings.batch).sum(-1)
        window_drops = [full - float(v) for v in values]
        order = sorted(range(len(windows)), key=lambda i: -window_drops[i])
        kept = sorted(i for i in order[:settings.windows_kept]
                      if window_drops[i] > settings.min_window_drop)
        layers = [layer for i in kept for layer in windows[i]]
        knockouts = [Knockout(answer, (span,), layers=(layer,), heads=(head,))
                     for layer in layers for head in range(n_heads)]
        head_values = (ctx.knockout_logprobs(knockouts, batch=settings.batch).sum(-1)
                       if knockouts else [])
        drops = [[round(full - float(head_values[r * n_heads + h]), 4) for h in range(n_heads)]
                 for r in range(len(layers))]
        return {"windows": [{"layers": [w[0], w[-1]], "drop": round(d, 4)}
                            for w, d in zip(windows, window_drops, strict=True)],
                "layers": layers, "drops": drops}
