"""The ablation surrogate's LDS: cross-validated by default, held-out masks on request."""

import numpy as np

from relyscope.audits import run_audit
from relyscope.audits.ablation import cross_validated_lds, random_masks
from relyscope.config import AuditConfig
from tests.conftest import zelk_case


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
    held = run_audit(zelk_case(), tiny_lm, base.model_copy(update={"lds_masks": 16, "seed": 0}))
    cv_extras, held_extras = crossval.methods["ablation"], held.methods["ablation"]
    assert cv_extras["lds_on"].startswith("5-fold cross-validation")
    assert held_extras["lds_on"] == "16 held-out masks"
    assert crossval.faithfulness["ablation"]["lds"] == cv_extras["lds"]
    assert cv_extras["lds"] is not None and -1.0 <= cv_extras["lds"] <= 1.0
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
