"""The learned estimate's refit to its verification masks, and the honest LDS of a refit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from relyscope.audits.ablation import spearman_lds
from relyscope.audits.estimate_refit import (
    estimate_scale,
    leave_one_out_lds,
    leave_one_out_predictions,
    refit,
)


def _masks(rng: np.random.Generator, k: int, units: int) -> np.ndarray:
    return (rng.random((k, units)) < 0.5).astype(np.int8)


def test_enough_masks_and_a_light_penalty_recover_the_true_scores() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([3.0, 0.5, -0.2, 0.0, 1.0, 0.1])
    masks = _masks(rng, 200, len(truth))
    outcomes = masks @ truth + 7.0  # the intercept is left to the masks' means
    wrong = np.array([0.0, 0.0, 0.0, 5.0, 0.0, 0.0])
    np.testing.assert_allclose(refit(masks, outcomes, wrong, 1e-6), truth, atol=1e-5)


def test_a_heavy_penalty_keeps_the_estimate_scaled_to_the_outcomes() -> None:
    rng = np.random.default_rng(1)
    estimate = np.array([1.0, 0.2, 0.0, 0.4])
    masks = _masks(rng, 8, 4)
    np.testing.assert_allclose(refit(masks, masks @ (2.5 * estimate), estimate, 1e9),
                               2.5 * estimate, atol=1e-6)
    # an estimate that orders the masks backwards is never turned around: kept unscaled (the
    # default) or, with "zero", scaled to 0
    np.testing.assert_allclose(refit(masks, -(masks @ estimate), estimate, 1e9), estimate,
                               atol=1e-6)
    np.testing.assert_allclose(refit(masks, -(masks @ estimate), estimate, 1e9,
                                     backwards="zero"), 0.0, atol=1e-6)


def test_a_backwards_estimate_is_where_the_ridge_starts_unless_asked_otherwise() -> None:
    """Masks that order themselves against the estimate: "keep" (the default) starts the ridge
    from the unscaled estimate, "zero" from nothing; both agree wherever the scale is
    positive."""
    rng = np.random.default_rng(5)
    estimate = np.array([2.0, 0.0, 1.0, 0.5, 0.0, 0.3, 0.0, 0.0, 0.1, 0.0])
    masks = _masks(rng, 6, len(estimate))  # fewer masks than units, as in a report
    backwards = -(masks @ estimate) + rng.normal(scale=0.1, size=6)
    assert estimate_scale(masks, backwards, estimate) < 0
    kept = refit(masks, backwards, estimate, 3.0)
    dropped = refit(masks, backwards, estimate, 3.0, backwards="zero")
    np.testing.assert_allclose(kept - dropped, refit(masks, np.zeros(6), estimate, 3.0)
                               - refit(masks, np.zeros(6), np.zeros(10), 3.0))
    assert int(np.argmax(kept)) == 0 and int(np.argmax(dropped)) != 0
    forwards = masks @ (1.5 * estimate) + rng.normal(scale=0.1, size=6)
    assert estimate_scale(masks, forwards, estimate) == pytest.approx(1.5, abs=0.1)
    np.testing.assert_array_equal(refit(masks, forwards, estimate, 3.0),
                                  refit(masks, forwards, estimate, 3.0, backwards="zero"))
    # the leave-one-out check uses the same rule, and an estimate the masks contradict fails it
    assert leave_one_out_lds(masks, backwards, estimate, 3.0, backwards="keep") < 0


def test_leave_one_out_does_not_credit_a_fit_to_noise() -> None:
    """On outcomes that are pure noise, a lightly penalised refit of 24 units to 8 masks
    orders those same masks perfectly; left out one at a time it predicts nothing."""
    in_sample, left_out = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        masks, noise = _masks(rng, 8, 24), rng.normal(size=8)
        estimate = rng.random(24)
        fitted = refit(masks, noise, estimate, 1e-3)
        in_sample.append(spearman_lds(masks @ fitted, noise))
        left_out.append(leave_one_out_lds(masks, noise, estimate, 1e-3))
    assert min(v for v in in_sample if v is not None) > 0.99
    assert abs(np.mean([v for v in left_out if v is not None])) < 0.3


def test_a_masks_prediction_never_reads_its_own_outcome() -> None:
    rng = np.random.default_rng(3)
    masks, outcomes, estimate = _masks(rng, 8, 12), rng.normal(size=8), rng.random(12)
    before = leave_one_out_predictions(masks, outcomes, estimate, 3.0)
    for i in range(8):
        moved = outcomes.copy()
        moved[i] += 100.0
        after = leave_one_out_predictions(masks, moved, estimate, 3.0)
        assert after[i] == pytest.approx(before[i])
        assert not np.allclose(np.delete(after, i), np.delete(before, i))


def test_leave_one_out_is_exact_on_linear_outcomes() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=10)
    # 40 distinct masks, so no two outcomes tie
    masks = (rng.choice(2 ** 10, 40, replace=False)[:, None] >> np.arange(10) & 1).astype(np.int8)
    assert leave_one_out_lds(masks, masks @ truth, np.zeros(10), 1e-6) == pytest.approx(1.0)
    assert leave_one_out_lds(masks[:2], (masks @ truth)[:2], truth, 1.0) is None  # < 3 masks


def test_the_penalty_must_be_positive() -> None:
    with pytest.raises(ValueError, match="penalty"):
        refit(np.ones((3, 2)), np.zeros(3), np.zeros(2), 0.0)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.integers(3, 10), st.integers(1, 12), st.data())
def test_any_masks_give_finite_scores_for_every_unit(k: int, units: int,
                                                    data: st.DataObject) -> None:
    masks = data.draw(arrays(np.int8, (k, units), elements=st.integers(0, 1)))
    values = st.floats(-50, 50, allow_nan=False)
    outcomes = data.draw(arrays(np.float64, k, elements=values))
    estimate = data.draw(arrays(np.float64, units, elements=values))
    scores = refit(masks, outcomes, estimate, 3.0)
    assert scores.shape == (units,) and np.isfinite(scores).all()
    lds = leave_one_out_lds(masks, outcomes, estimate, 3.0)
    assert lds is None or -1.0 <= lds <= 1.0
