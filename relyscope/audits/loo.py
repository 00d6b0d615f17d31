"""Leave-one-out: remove each unit, re-score the answer. drop = logp_full - logp_without."""

from __future__ import annotations

from pydantic import Field

from relyscope.audits.base import ANSWER, AuditContext, BudgetExhausted, MethodResult, Probe
from relyscope.audits.hierarchy import expand_sentences
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome


class LooSettings(MethodSettings):
    regenerate: bool = False  # also regenerate greedily without each unit (answer flips)
    # hierarchical (source granularity): split into sentences the sources whose drop reaches
    # expand_drop nats, at most max_expanded of them (relyscope.audits.hierarchy); None: off
    expand_drop: float | None = None
    max_expanded: int | None = Field(default=None, ge=1)


class LeaveOneOut(AuditMethod):
    name = "loo"
    kind = "reliance"
    votes = True
    priority = 10
    column = 10
    Settings = LooSettings

    def plan(self, ctx: AuditContext) -> list[Probe]:
        return [(ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids]

    def compute(self, ctx: AuditContext, settings: LooSettings) -> Outcome:
        full = ctx.full_score().total
        probes = {uid: (ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids}
        scored, cut = ctx.score_available(list(probes.values()))
        scores = {uid: (full - scored[p].total) if p in scored else None
                  for uid, p in probes.items()}
        extras: dict[str, object] = {"logprob_without": {
            uid: scored[p].total for uid, p in probes.items() if p in scored}}
        if settings.regenerate and cut is None:
            extras["answer_flips"] = self._answer_flips(ctx, probes)
        if (settings.expand_drop is not None and cut is None
                and ctx.config.granularity == "source"):
            try:
                extras["hierarchy"] = expand_sentences(ctx, scores, settings.expand_drop,
                                                       settings.max_expanded)
            except BudgetExhausted as stop:
                cut = f"hierarchy: {stop.reason}"
        return Outcome(scores, extras, cut)

    def claim_scores(self, ctx: AuditContext, result: MethodResult,
                     token_span: tuple[int, int]) -> Outcome:
        """Each removal's drop in the claim's tokens alone, from the same scored variants."""
        start, end = token_span
        full = ctx.full_score().tokens(start, end).total
        probes = {uid: (ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids}
        scored = ctx.cached(list(probes.values()))
        return Outcome({uid: (full - scored[p].tokens(start, end).total) if p in scored
                        else None for uid, p in probes.items()})

    @staticmethod
    def _answer_flips(ctx: AuditContext, probes: dict[str, Probe]) -> dict[str, dict[str, object]]:
        """Greedy re-generation without each unit: does the answer change?"""
        flips: dict[str, dict[str, object]] = {}
        for uid, probe in probes.items():
            if ctx.budget.check(1) is not None:
                break
            text = ctx.generate(probe, max_new_tokens=ctx.case.decoding.max_new_tokens)
            changed = text.strip() != (ctx.case.answer or "").strip()
            flips[uid] = {"answer": text, "changed": changed}
        return flips
