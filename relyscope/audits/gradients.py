"""Gradient attributions: integrated gradients and input x gradient, summed per unit.

Gradient attribution, labelled as such: not reliance (no intervention is scored) and not a
vote in the verdicts. Both run Captum on the input-embedding layer with respect to the
answer's teacher-forced log-prob. Integrated gradients' baseline is the full rendering with
every unit's tokens replaced by the pad token, so only unit positions carry attribution and,
by completeness, the units' scores sum to logp(full) - logp(baseline) up to the convergence
delta reported beside them. Cost is in forward+backward passes (one per integration step,
plus the two plain passes of f(input) and f(baseline)).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from relyscope.audits.base import AuditContext, MethodResult
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome
from relyscope.models import GradientMethod

LABEL = "gradient attribution (not reliance)"
UNCONVERGED = 0.25  # |delta| / |f(input) - f(baseline)| above which a warning says so


class IntegratedGradientsSettings(MethodSettings):
    steps: int = Field(default=16, ge=2, le=512)  # Gauss-Legendre integration steps
    batch: int = Field(default=8, ge=1, le=256)  # steps per forward+backward call


class InputXGradientSettings(MethodSettings):
    pass


class _GradientMethod(AuditMethod):
    """What both gradient methods share: Captum on the full rendering, summed per unit."""

    kind = "provenance"
    votes = False
    default = False
    gradient: ClassVar[GradientMethod]

    def compute(self, ctx: AuditContext, settings: Any) -> Outcome:
        steps = getattr(settings, "steps", 1)
        batch = getattr(settings, "batch", 1)
        passes = steps + 2 if self.gradient == "integrated_gradients" else 1
        ctx.require(passes)
        spans = {uid: ctx.full.unit_token_spans.get(uid, (0, 0)) for uid in ctx.unit_ids}
        positions = sorted({i for a, b in spans.values() for i in range(a, b)})
        result = ctx.gradient_attribution(self.gradient, positions, steps, batch)
        scores: dict[str, float | None] = {
            uid: float(sum(result.per_token[a:b])) for uid, (a, b) in spans.items()}
        extras: dict[str, Any] = {"label": LABEL, "layer": "input embeddings",
                                  "target": "answer log-prob (nats)",
                                  "forward_backward_passes": result.passes}
        if self.gradient == "integrated_gradients":
            total = sum(s for s in scores.values() if s is not None)
            extras.update({
                "baseline": "pad token at every unit position", "steps": steps,
                "integration": "gausslegendre", "logprob": result.logprob,
                "baseline_logprob": result.baseline_logprob, "sum_attributions": total,
                "convergence_delta": result.delta})
            gap = (result.logprob or 0.0) - (result.baseline_logprob or 0.0)
            relative = abs(result.delta or 0.0) / max(abs(gap), 1e-9)
            extras["relative_delta"] = relative
            if relative > UNCONVERGED:
                extras["warnings"] = [
                    f"{self.name}: convergence delta {result.delta:.2f} is {relative:.0%} of "
                    f"logp(input) - logp(baseline) = {gap:.2f}; the attributions are not "
                    "converged (raise method_settings.integrated_gradients.steps)"]
        return Outcome(scores, extras)

    def unit_provenance(self, result: MethodResult, unit_id: str) -> dict[str, float | None]:
        return {self.name: result.scores.get(unit_id)}


class IntegratedGradients(_GradientMethod):
    name = "integrated_gradients"
    priority = 70
    gradient = "integrated_gradients"
    Settings = IntegratedGradientsSettings


class InputXGradient(_GradientMethod):
    name = "input_x_gradient"
    priority = 65
    gradient = "input_x_gradient"
    Settings = InputXGradientSettings
