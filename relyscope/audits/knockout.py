"""Attention knockout: the drop when the answer can no longer attend to a unit's tokens.

For each unit, the attention edges from the answer's positions (the position before the
answer and every answer token; with `later_positions`, every position after the unit) to the
unit's tokens are removed, in every layer or a layer window, by a per-layer 4D attention mask
(relyscope.models.knockout). drop = logp_full - logp_knocked. Beside leave-one-out it says
whether a unit's reliance goes through direct attention from the answer: a unit with a large
leave-one-out drop and a small knockout drop reaches the answer through the residual stream
of the positions in between. A knockout of nothing is the plain score.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from relyscope.audits.base import AuditContext, MethodResult
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome
from relyscope.errors import CaseError
from relyscope.models import Knockout, Span


class KnockoutSettings(MethodSettings):
    # [first, last] decoder layers (inclusive) whose edges are removed; None: every layer
    layers: tuple[int, int] | None = None
    later_positions: bool = False  # also block every position after the unit, not only the answer
    batch: int = Field(default=8, ge=1, le=256)  # knockouts per model call

    @model_validator(mode="after")
    def _ordered(self) -> KnockoutSettings:
        if self.layers is not None and not 0 <= self.layers[0] <= self.layers[1]:
            raise ValueError("layers must be [first, last] with 0 <= first <= last")
        return self


def answer_queries(ctx: AuditContext) -> Span:
    """The query positions of the answer: the one predicting its first token, and its own."""
    start, end = ctx.full.target_token_span
    return start - 1, end


def layer_range(ctx: AuditContext, window: tuple[int, int] | None, method: str = "knockout"
                ) -> tuple[int, ...] | None:
    """The decoder layers of a window (None: all); a window past the model's depth is an
    error naming the setting."""
    if window is None:
        return None
    if window[1] >= ctx.lm.num_layers:
        raise CaseError(f"method_settings.{method}.layers",
                        f"layer {window[1]} is past the model's {ctx.lm.num_layers} layers")
    return tuple(range(window[0], window[1] + 1))


class AttentionKnockout(AuditMethod):
    name = "knockout"
    kind = "reliance"
    votes = False
    default = False
    priority = 45
    column = 45
    Settings = KnockoutSettings

    def compute(self, ctx: AuditContext, settings: KnockoutSettings) -> Outcome:
        layers = layer_range(ctx, settings.layers)
        answer = answer_queries(ctx)
        spans = {uid: ctx.full.unit_token_spans.get(uid, (0, 0)) for uid in ctx.unit_ids}
        knockouts = {uid: Knockout(queries=(span[1], answer[1]) if settings.later_positions
                                   else answer, keys=(span,), layers=layers)
                     for uid, span in spans.items() if span[1] > span[0]}
        ctx.require(len(knockouts))
        full = ctx.full_score().total
        tokens = ctx.knockout_logprobs(list(knockouts.values()), batch=settings.batch)
        per_token = dict(zip(knockouts, tokens, strict=True))
        knocked = {uid: float(row.sum()) for uid, row in per_token.items()}
        scores: dict[str, float | None] = {
            uid: (full - knocked[uid]) if uid in knocked else 0.0 for uid in ctx.unit_ids}
        extras: dict[str, Any] = {
            "logprob_knocked": knocked,
            "layers": list(settings.layers) if settings.layers else [0, ctx.lm.num_layers - 1],
            "queries": "every position after the unit" if settings.later_positions
                       else "the answer's positions",
            "mask": "4D attention mask per layer"}
        return Outcome(scores, extras, detail=per_token)

    def claim_scores(self, ctx: AuditContext, result: MethodResult,
                     token_span: tuple[int, int]) -> Outcome | None:
        """Each knockout's drop in the claim's answer tokens alone, from the same passes."""
        per_token = result.detail
        if not isinstance(per_token, dict):
            return None  # cut before it ran
        start, end = token_span
        full = ctx.full_score().tokens(start, end).total
        return Outcome({uid: (full - float(per_token[uid][start:end].sum()))
                        if uid in per_token else 0.0 for uid in ctx.unit_ids})
