"""Provenance: where the answer tokens looked. Attention, labelled provenance, never reliance.

One attention pass over the full prompt + answer, which keeps the rows that predict answer
tokens (models/answer_attention.py). For those rows, the head-averaged attention to each unit's
token span is summed, per layer. The first token(s) (attention sinks) are excluded by
renormalising each row without them. Reported: mean over layers (``attention``), last layer,
attention rollout (Abnar & Zuidema: the product of 0.5 A + 0.5 I over layers), mass per span
token, and each unit's share of the mass that went to units at all.
"""

from __future__ import annotations

import torch

from relyscope.audits.base import AuditContext, MethodResult
from relyscope.audits.method import AuditMethod, NoSettings, Outcome

SINK_TOKENS = 1
# the provenance entries a unit gets, besides the headline score
_UNIT_EXTRAS = ("attention_last", "attention_rollout", "attention_per_token", "attention_share")


class AttentionProvenance(AuditMethod):
    name = "attention"
    kind = "provenance"
    priority = 0
    reads_attention = True

    def compute(self, ctx: AuditContext, settings: NoSettings) -> Outcome:
        attention = ctx.answer_attention()
        rendered = ctx.full
        answer_rows = without_sinks(attention.rows.float().mean(1))  # [Ly, A, L], head mean
        rollout_rows = without_sinks(attention.rollout.unsqueeze(0))[0]
        spans = {uid: rendered.unit_token_spans.get(uid, (0, 0)) for uid in ctx.unit_ids}
        layer_mass = {uid: answer_rows[:, :, a:b].sum(-1).mean(-1)
                      for uid, (a, b) in spans.items()}
        mean_mass = {uid: float(m.mean()) for uid, m in layer_mass.items()}
        total = sum(mean_mass.values()) or 1.0
        extras = {
            "attention_last": {uid: float(m[-1]) for uid, m in layer_mass.items()},
            "attention_rollout": {uid: float(rollout_rows[:, a:b].sum(-1).mean())
                                  for uid, (a, b) in spans.items()},
            "attention_per_token": {uid: mean_mass[uid] / max(1, b - a)
                                    for uid, (a, b) in spans.items()},
            "attention_share": {uid: mean_mass[uid] / total for uid in ctx.unit_ids},
            "layer_profile": {uid: [round(float(x), 6) for x in m]
                              for uid, m in layer_mass.items()},
            "sink_tokens": SINK_TOKENS, "label": "provenance",
        }
        # per answer token, the mean-over-layers mass to each unit: the rows of a claim
        token_mass = torch.stack([layer_mass_rows(answer_rows, spans[uid])
                                  for uid in ctx.unit_ids], dim=-1)  # [A, U]
        return Outcome(dict(mean_mass), extras, detail=token_mass.cpu())

    def claim_scores(self, ctx: AuditContext, result: MethodResult,
                     token_span: tuple[int, int]) -> Outcome | None:
        """The attention of the claim's answer tokens alone (its rows of the same pass)."""
        if result.detail is None:
            return None
        start, end = token_span
        mass = result.detail[start:end].mean(0)
        scores = {uid: float(m) for uid, m in zip(ctx.unit_ids, mass, strict=True)}
        total = sum(scores.values()) or 1.0
        return Outcome(scores, {"attention_share": {uid: v / total for uid, v in scores.items()}})

    def unit_provenance(self, result: MethodResult, unit_id: str) -> dict[str, float | None]:
        if "attention_share" not in result.extras:
            return {}  # cut before it ran
        return {self.name: result.scores.get(unit_id),
                **{key: result.extras[key].get(unit_id) for key in _UNIT_EXTRAS}}


def layer_mass_rows(answer_rows: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    """Per answer row, the span's attention mass averaged over layers: [A]."""
    a, b = span
    return answer_rows[:, :, a:b].sum(-1).mean(0)


def without_sinks(rows: torch.Tensor) -> torch.Tensor:
    """Zero the first SINK_TOKENS key columns and renormalise each row to sum to one."""
    rows = rows.clone()
    rows[..., :SINK_TOKENS] = 0
    return rows / rows.sum(-1, keepdim=True).clamp_min(1e-12)
