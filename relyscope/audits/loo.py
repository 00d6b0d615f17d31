"""Leave-one-out: remove each unit, re-score the answer. drop = logp_full - logp_without."""

from __future__ import annotations

import time

from relyscope.audits.base import ANSWER, AuditContext, BudgetExhausted, MethodResult, Probe


class LeaveOneOut:
    name = "loo"

    def plan(self, ctx: AuditContext) -> list[Probe]:
        return [(ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids]

    def run(self, ctx: AuditContext) -> MethodResult:
        started = time.perf_counter()
        passes_before = ctx.budget.spent
        full = ctx.full_score().total
        probes = {uid: (ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids}
        cut = None
        try:
            scored = ctx.score(list(probes.values()))
        except BudgetExhausted as stop:
            scored, cut = stop.scored, stop.reason
        scores = {uid: (full - scored[p].total) if p in scored else None
                  for uid, p in probes.items()}
        extras: dict[str, object] = {"logprob_without": {
            uid: scored[p].total for uid, p in probes.items() if p in scored}}
        if ctx.config.regenerate and cut is None:
            extras["answer_flips"] = self._answer_flips(ctx, probes)
        return MethodResult(self.name, scores, extras, ctx.budget.spent - passes_before,
                            time.perf_counter() - started, cut)

    @staticmethod
    def _answer_flips(ctx: AuditContext, probes: dict) -> dict[str, dict[str, object]]:
        """Greedy re-generation without each unit: does the answer change?"""
        flips: dict[str, dict[str, object]] = {}
        for uid, probe in probes.items():
            if ctx.budget.check(1) is not None:
                break
            text = ctx.lm.generate(ctx.render(probe).prompt_ids,
                                   max_new_tokens=ctx.case.decoding.max_new_tokens)
            ctx.budget.spent += 1
            changed = text.strip() != (ctx.case.answer or "").strip()
            flips[uid] = {"answer": text, "changed": changed}
        return flips
