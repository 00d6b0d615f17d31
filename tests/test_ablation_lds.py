"""The ablation surrogate's LDS: cross-validated by default, held-out masks on request."""

import itertools

import numpy as np
import pytest

from relyscope.audits import run_audit
from relyscope.audits.ablation import (
    CV_FOLDS,
    cross_validated_lds,
    fit_surrogate,
    random_masks,
    spearman_lds,
)
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, Variant
from tests.conftest import zelk_case


def spearman_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of average ranks (1-based), written out."""
    def ranks(v: np.ndarray) -> np.ndarray:
        return np.array([(np.sum(v < a) + 1 + np.sum(v <= a)) / 2 for a in v])

    rx, ry = ranks(x) - ranks(x).mean(), ranks(y) - ranks(y).mean()
    return float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


def test_lds_is_the_spearman_correlation_worked_out_by_hand():
    # ranks 1 2 3 4 against 1 3 2 4: sum of squared rank gaps 2, so 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman_lds(np.array([1.0, 2, 3, 4]), np.array([10.0, 30, 20, 40])) == \
        pytest.approx(0.8)
    # a tie takes the average rank: ranks 1 2.5 2.5 4 against 1 2 3 4
    assert spearman_lds(np.array([0.0, 1, 1, 2]), np.array([1.0, 2, 3, 4])) == \
        pytest.approx(spearman_by_hand(np.array([0.0, 1, 1, 2]), np.array([1.0, 2, 3, 4])))
    assert spearman_lds(np.array([4.0, 3, 2, 1]), np.array([1.0, 2, 3, 4])) == pytest.approx(-1)
    assert spearman_lds(np.ones(4), np.array([1.0, 2, 3, 4])) is None  # undefined, not 0


def test_cross_validated_lds_is_high_for_a_linear_target_and_low_for_noise():
    rng = np.random.default_rng(0)
    masks = random_masks(64, 6, 0.5, rng)
    weights = np.array([3.0, -1.0, 0.5, 0.0, 2.0, 0.0])
    linear = masks @ weights + rng.normal(0, 0.1, 64)
    assert cross_validated_lds(masks, linear, 0.01, seed=0) > 0.9
    noise = rng.normal(0, 1, 64)
    assert abs(cross_validated_lds(masks, noise, 0.01, seed=0)) < 0.5


def test_too_few_distinct_masks_give_no_lds_rather_than_a_guess():
    masks = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 8, dtype=bool)  # 4 distinct < 2 * 5
    targets = masks @ np.array([1.0, 2.0])
    assert cross_validated_lds(masks, targets, 0.01, seed=0) is None


def test_the_report_says_how_lds_was_measured_and_holdout_costs_passes(tiny_lm):
    base = AuditConfig(methods=("ablation",), ablations=24)  # < 2 x 2^6: random masks
    crossval = run_audit(zelk_case(), tiny_lm, base)
    held = run_audit(zelk_case(), tiny_lm, AuditConfig(
        methods=("ablation",), method_settings={"ablation": {"ablations": 24, "lds_masks": 16}}))
    cv_extras, held_extras = crossval.methods["ablation"], held.methods["ablation"]
    assert cv_extras["lds_on"].startswith("5-fold cross-validation")
    assert held_extras["lds_on"] == "16 held-out masks"
    assert crossval.faithfulness["ablation"]["lds"] == cv_extras["lds"]
    assert cv_extras["lds"] is not None  # its value: test_the_reported_lds_is_recomputed_by_hand
    assert held_extras["distinct_masks"] > cv_extras["distinct_masks"]


def test_enough_masks_for_every_subset_twice_over_use_each_subset_once(tiny_lm):
    units = len(tiny_lm.renderer(zelk_case()).units)  # five sources and a tool call
    report = run_audit(zelk_case(), tiny_lm, AuditConfig(methods=("ablation",),
                                                         ablations=2 * 2**units))
    extras = report.methods["ablation"]
    assert extras["design"] == "every mask once"
    assert extras["masks_fit"] == extras["distinct_masks"] == 2**units
    fewer = run_audit(zelk_case(), tiny_lm, AuditConfig(methods=("ablation",),
                                                        ablations=2 * 2**units - 1))
    assert fewer.methods["ablation"]["design"] == "random"
    assert fewer.methods["ablation"]["masks_fit"] == 2 * 2**units - 1


def test_a_pass_budget_that_fits_gives_the_unbudgeted_scores_in_few_calls(tiny_lm):
    from relyscope.models import CausalLM

    config = AuditConfig(methods=("loo", "ablation"), ablations=24)
    free_lm = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="t", revision="free")
    capped_lm = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="t", revision="capped")
    free = run_audit(zelk_case(), free_lm, config)
    capped = run_audit(zelk_case(), capped_lm,
                       config.model_copy(update={"max_forward_passes": 500}))
    assert not capped.partial
    for unit in free.units:  # equal up to float rounding (the chunks differ)
        got = capped.unit(unit.id).reliance
        for method, value in unit.reliance.items():
            assert (got[method] is None) if value is None else abs(got[method] - value) < 1e-4
    # head, planned variants, faithfulness: three tries, not one per 16 variants
    assert capped_lm.cost.model_calls <= free_lm.cost.model_calls + 1


def test_the_reported_lds_is_recomputed_by_hand_on_every_mask(tiny_lm):
    """Every mask once (known masks, no draw): score each variant on a separate backend, fit
    each of the seeded folds, and take the Spearman correlation by hand."""
    case = zelk_case()
    units = [u.id for u in tiny_lm.renderer(case).units]
    report = run_audit(case, tiny_lm, AuditConfig(methods=("ablation",),
                                                  ablations=2 * 2**len(units), seed=3))
    extras = report.methods["ablation"]
    assert extras["design"] == "every mask once" and extras["lds_on"].startswith("5-fold")

    hand = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="hand", revision="lds")
    renderer = hand.renderer(case)
    masks = np.array(list(itertools.product((False, True), repeat=len(units))))
    rendered = [renderer.render(Variant.without([u for u, keep in zip(units, m, strict=True)
                                                 if not keep])) for m in masks]
    targets = np.array([s.logit_prob for s in hand.score(rendered)])
    answer_tokens = len(renderer.render().target_ids)
    distinct, which = np.unique(masks, axis=0, return_inverse=True)
    fold = (np.random.default_rng(3).permutation(len(distinct)) % CV_FOLDS)[which.reshape(-1)]
    predicted = np.empty(len(masks))
    for k in range(CV_FOLDS):
        weights, bias = fit_surrogate(masks[fold != k], targets[fold != k], 0.01, answer_tokens)
        predicted[fold == k] = masks[fold == k].astype(float) @ weights + bias
    want = spearman_by_hand(predicted, targets)
    assert extras["lds"] == pytest.approx(want, abs=1e-6)
    assert report.faithfulness["ablation"]["lds"] == extras["lds"]
    weights, _ = fit_surrogate(masks, targets, 0.01, answer_tokens)  # the scores: the full fit
    for uid, weight in zip(units, weights, strict=True):
        assert report.unit(uid).reliance["ablation"] == pytest.approx(weight, abs=1e-4)


def test_penalty_weights_keep_out_a_unit_the_prior_doubts():
    """Two units with the same effect and independent patterns: the plain LASSO keeps both;
    with unit 1's penalty 20x unit 0's (penalty weight 0.05) only unit 0 is kept, and weights
    of 1 change nothing."""
    rng = np.random.default_rng(4)
    masks = rng.random((12, 6)) < 0.5
    targets = masks[:, :2].astype(float) @ np.array([1.0, 1.0])
    plain, _ = fit_surrogate(masks, targets, 0.05)
    assert plain[0] > 0.5 and plain[1] > 0.5
    doubted, _ = fit_surrogate(masks, targets, 0.05, penalty_weights=np.array(
        [1.0, 0.05, 1.0, 1.0, 1.0, 1.0]))
    assert doubted[0] > 0.5 and doubted[1] == 0.0
    ones, bias = fit_surrogate(masks, targets, 0.05, penalty_weights=np.ones(6))
    np.testing.assert_allclose(ones, plain)
    assert bias == pytest.approx(fit_surrogate(masks, targets, 0.05)[1])
