"""Leave-one-out: remove each unit, re-score the answer. drop = logp_full - logp_without.

Removing a unit re-runs everything after it in the prompt, so flat leave-one-out over 40
sources costs about half the prompt 40 times. `screen_top` (a source-first screen) removes
only the top units of an ablation surrogate fit on the ablation method's first-round masks:
the same cached variants when ablation runs in the audit (no extra passes), scored here when
it does not. The other units' drops are None (not measured), and the report's
`methods.loo.screen` names the screened units and how many were left out.
"""

from __future__ import annotations

from pydantic import Field

from relyscope.audits.ablation import MIN_MASKS_TO_FIT, ContextAblation, first_round
from relyscope.audits.base import ANSWER, AuditContext, BudgetExhausted, MethodResult, Probe
from relyscope.audits.hierarchy import expand_sentences
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome
from relyscope.audits.registry import settings_for


class LooSettings(MethodSettings):
    regenerate: bool = False  # also regenerate greedily without each unit (answer flips)
    # hierarchical (source granularity): split into sentences the sources whose drop reaches
    # expand_drop nats, at most max_expanded of them (relyscope.audits.hierarchy); None: off
    expand_drop: float | None = None
    max_expanded: int | None = Field(default=None, ge=1)
    # source-first screen: remove only the top screen_top units of the ablation surrogate
    # (module docstring); None: every unit
    screen_top: int | None = Field(default=None, ge=1)


class LeaveOneOut(AuditMethod):
    name = "loo"
    kind = "reliance"
    votes = True
    priority = 10
    column = 10
    Settings = LooSettings

    def plan(self, ctx: AuditContext) -> list[Probe]:
        if self.settings(ctx).screen_top is not None:
            return []  # the screen decides which units to remove (compute)
        return [(ctx.removal([uid]), ANSWER) for uid in ctx.unit_ids]

    def compute(self, ctx: AuditContext, settings: LooSettings) -> Outcome:
        full = ctx.full_score().total
        extras: dict[str, object] = {}
        units = list(ctx.unit_ids)
        if settings.screen_top is not None:
            screen = ablation_screen(ctx, settings.screen_top)
            if screen is None:
                return Outcome(dict.fromkeys(ctx.unit_ids), extras,
                               "screen: the budget cut its ablation masks")
            units, extras["screen"] = screen["units"], screen
        probes = {uid: (ctx.removal([uid]), ANSWER) for uid in units}
        scored, cut = ctx.score_available(list(probes.values()))
        scores: dict[str, float | None] = dict.fromkeys(ctx.unit_ids)
        scores.update({uid: (full - scored[p].total) if p in scored else None
                       for uid, p in probes.items()})
        extras["logprob_without"] = {uid: scored[p].total for uid, p in probes.items()
                                     if p in scored}
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


def ablation_screen(ctx: AuditContext, top: int) -> dict[str, object] | None:
    """The `top` units of an ablation surrogate fit on the ablation method's first-round
    masks (its own settings, so they are the variants it scores); None when the budget
    affords too few of them."""
    settings = settings_for(ctx.config, "ablation")
    train, _held_out = ContextAblation.masks(ctx, settings)
    train = train[:first_round(settings)]
    probes = [ContextAblation.probe(ctx, mask) for mask in train]
    passes_before = ctx.passes
    scored, _cut = ctx.score_available(probes)
    rows = [i for i, p in enumerate(probes) if p in scored]
    if len(rows) < MIN_MASKS_TO_FIT:
        return None
    weights = ContextAblation.surrogate(ctx, settings, train[rows],
                                        [scored[probes[i]] for i in rows])
    order = sorted(range(len(ctx.unit_ids)), key=lambda i: -weights[i])[:top]
    return {"by": "ablation surrogate", "masks": len(rows),
            "mask_passes": ctx.passes - passes_before, "top": top,
            "units": [ctx.unit_ids[i] for i in order],
            "not_removed": len(ctx.unit_ids) - len(order)}
