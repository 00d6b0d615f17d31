"""Gradient attributions (Captum) on the real packaged model: completeness, labels, cost."""

from __future__ import annotations

from pathlib import Path

import pytest

import relyscope
from relyscope.audits import run_audit
from relyscope.audits.registry import unit_score_columns, voting_methods
from relyscope.case import load_case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, ScoreItem, Variant

pytestmark = pytest.mark.real_model

EXAMPLE = Path(relyscope.__file__).parent / "data" / "example_case.json"
STEPS = 16


def test_integrated_gradients_completeness(real_lm: CausalLM) -> None:
    case = load_case(EXAMPLE).with_answer("The Zelk guild was founded by Anna Roth.")
    config = AuditConfig(methods=("integrated_gradients", "input_x_gradient"),
                         method_settings={"integrated_gradients": {"steps": STEPS}})
    report = run_audit(case, real_lm, config)
    assert not report.errors
    ig = report.methods["integrated_gradients"]
    scores = {u.id: u.provenance["integrated_gradients"] for u in report.units}
    assert all(s is not None for s in scores.values())

    # f(input) and f(baseline) checked against the plain scorer, not the gradient code's own
    rendered = real_lm.renderer(case).render(Variant())
    assert abs(ig["logprob"] - report.answer_logprob) < 1e-3
    baseline_ids = list(rendered.input_ids)
    for a, b in rendered.unit_token_spans.values():
        baseline_ids[a:b] = [real_lm.scorer.pad_token_id] * (b - a)
    baseline = real_lm.score_tokens([ScoreItem(tuple(baseline_ids),
                                               len(rendered.target_ids))])[0].total
    assert abs(ig["baseline_logprob"] - baseline) < 1e-3

    # completeness: the units' attributions sum to f(input) - f(baseline) within the delta
    gap = report.answer_logprob - baseline
    total = sum(scores.values())
    assert abs(total - ig["sum_attributions"]) < 1e-6
    assert abs(total - gap) <= abs(ig["convergence_delta"]) + 1e-3
    assert abs(ig["convergence_delta"]) < 0.25 * abs(gap)  # converged to within a quarter
    assert ig["relative_delta"] == pytest.approx(abs(ig["convergence_delta"]) / abs(gap),
                                                 rel=1e-3)
    assert not any("not converged" in w for w in report.warnings)
    assert ig["steps"] == STEPS and ig["baseline"].startswith("pad token")

    # cost in forward+backward passes; labelled, never reliance, never a vote
    per_method = report.cost["per_method"]
    assert per_method["integrated_gradients"]["forward_passes"] == STEPS + 2
    assert per_method["input_x_gradient"]["forward_passes"] == 1
    assert ig["label"] == report.methods["input_x_gradient"]["label"]
    assert "not reliance" in ig["label"]
    for name in ("integrated_gradients", "input_x_gradient"):
        assert name not in unit_score_columns() and name not in voting_methods()
        assert all(name not in u.reliance for u in report.units)
    ixg = {u.id: u.provenance["input_x_gradient"] for u in report.units}
    assert len(set(ixg.values())) == len(ixg)  # real per-unit values, not a constant


def test_gradient_weights_stay_trainable_after_the_call(real_lm: CausalLM) -> None:
    rendered = real_lm.renderer(load_case(EXAMPLE).with_answer("Anna Roth.")).render(Variant())
    flags = [p.requires_grad for p in real_lm.model.parameters()]
    result = real_lm.gradient_attribution(rendered.input_ids, len(rendered.target_ids),
                                          method="input_x_gradient")
    assert [p.requires_grad for p in real_lm.model.parameters()] == flags
    assert len(result.per_token) == len(rendered.input_ids) and result.passes == 1


def test_an_unconverged_integral_is_a_warning(real_lm: CausalLM) -> None:
    case = load_case(EXAMPLE).with_answer("The Zelk guild was founded by Anna Roth.")
    config = AuditConfig(methods=("integrated_gradients",),
                         method_settings={"integrated_gradients": {"steps": 2}})
    report = run_audit(case, real_lm, config)
    ig = report.methods["integrated_gradients"]
    assert ig["steps"] == 2 and ig["relative_delta"] > 0.25
    assert any(w.startswith("integrated_gradients: convergence delta") and "not converged" in w
               for w in report.warnings)
