"""Tool-output ablation: replace each tool call's output and watch the answer and later calls.

Modes per call: `empty` (the output replaced by nothing), `error` (an error status with a
generic message), and `counterfactual` (the caller's alternative value, when given). For each
mode the drop in the final answer's log-prob and in the log-prob of every later tool call (its
name and arguments as the model emitted them) is measured. The unit's headline score is the
answer drop under `empty`.
"""

from __future__ import annotations

from relyscope.audits.base import ANSWER, AuditContext, Probe
from relyscope.audits.method import AuditMethod, NoSettings, Outcome
from relyscope.models import TargetScore, Variant

ERROR_TEXT = "the tool failed and returned no result"


class ToolOutputAblation(AuditMethod):
    name = "tools"
    kind = "reliance"
    votes = True
    priority = 20
    column = 30

    def applies(self, ctx: AuditContext) -> bool:
        return bool(ctx.case.tool_calls)

    def plan(self, ctx: AuditContext) -> list[Probe]:
        return self._plan(ctx)[1]

    @staticmethod
    def _plan(ctx: AuditContext) -> tuple[dict[tuple[str, str], Variant], list[Probe]]:
        """Variants per (call id, mode), and every probe they need (with the unablated ones)."""
        calls = ctx.case.tool_calls
        plan: dict[tuple[str, str], Variant] = {}
        for call in calls:
            plan[(call.id, "empty")] = Variant.replacing({call.id: ""})
            plan[(call.id, "error")] = Variant.replacing({call.id: ERROR_TEXT}, {call.id: "error"})
            if call.counterfactual is not None:
                plan[(call.id, "counterfactual")] = Variant.replacing(
                    {call.id: call.counterfactual})
        targets = [ANSWER, *range(1, len(calls))]
        probes: list[Probe] = [(Variant(), t) for t in targets]
        for (call_id, _mode), variant in plan.items():
            index = next(i for i, c in enumerate(calls) if c.id == call_id)
            probes += [(variant, t) for t in [ANSWER, *range(index + 1, len(calls))]]
        return plan, probes

    def compute(self, ctx: AuditContext, settings: NoSettings) -> Outcome:
        calls = ctx.case.tool_calls
        plan, probes = self._plan(ctx)
        scored, cut = ctx.score_available(probes)
        details: dict[str, dict[str, dict[str, float | None]]] = {}
        for (call_id, mode), variant in plan.items():
            index = next(i for i, c in enumerate(calls) if c.id == call_id)
            row: dict[str, float | None] = {"answer": _drop(scored, variant, ANSWER)}
            for later in range(index + 1, len(calls)):
                row[f"call:{calls[later].id}"] = _drop(scored, variant, later)
            details.setdefault(call_id, {})[mode] = row
        scores: dict[str, float | None] = dict.fromkeys(ctx.unit_ids)
        for call in calls:
            if call.id in scores:
                scores[call.id] = details[call.id]["empty"]["answer"]
        return Outcome(scores, {"drops": details, "error_text": ERROR_TEXT}, cut)


def _drop(scored: dict[Probe, TargetScore], variant: Variant, target: int | None
          ) -> float | None:
    full, changed = scored.get((Variant(), target)), scored.get((variant, target))
    if full is None or changed is None:
        return None
    return full.total - changed.total
