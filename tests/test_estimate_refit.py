"""The learned estimate's refit to its verification masks, and the honest LDS of a refit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from relyscope.audits.ablation import spearman_lds
from relyscope.audits.estimate_refit import (
    correct,
    estimate_scale,
    leave_one_out_lds,
    leave_one_out_predictions,
    left_out_lds,
    predict_left_out,
    refit,
    sparse_refit,
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
    chosen = correct(masks, outcomes, estimate, penalty=3.0, alpha=0.01, sparse_from=3)
    assert chosen.scores.shape == (units,) and np.isfinite(chosen.scores).all()
    assert chosen.fit == "ridge" or np.any(chosen.scores)
    assert chosen.lds is None or -1.0 <= chosen.lds <= 1.0


def _long_context(seed: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """40 units of which the answer relies on two; the estimate ranks those two first but
    gives every other unit a tail of its own (as the learned estimate does on long contexts
    of many small units)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(40)
    truth[[3, 17]] = [10.0, 6.0]
    estimate = rng.random(40) * 2.0
    estimate[[3, 17]] = [12.0, 9.0]
    masks = _masks(rng, k, 40)
    return masks, masks @ truth + rng.normal(scale=0.3, size=k), estimate, truth


def test_the_sparse_refit_drops_the_tail_the_ridge_spreads_over() -> None:
    masks, outcomes, estimate, truth = _long_context(0, 12)
    held = _masks(np.random.default_rng(99), 64, 40)
    sparse = sparse_refit(masks, outcomes, estimate, 0.01)
    ridge = refit(masks, outcomes, estimate, 3.0)
    tail = np.ones(40, dtype=bool)
    tail[[3, 17]] = False
    assert set(np.argsort(-sparse)[:2]) == {3, 17}
    # the ridge gives every unit of the tail a score (over 20 in all); the sparse fit keeps a
    # few of them, at a fiftieth of that
    assert np.count_nonzero(ridge) == 40 and np.abs(ridge[tail]).sum() > 20.0
    assert np.count_nonzero(sparse) <= 8 and np.abs(sparse[tail]).sum() < 0.4
    sparse_lds = spearman_lds(held @ sparse, held @ truth)
    ridge_lds = spearman_lds(held @ ridge, held @ truth)
    assert sparse_lds is not None and ridge_lds is not None and sparse_lds > ridge_lds


def test_correct_takes_the_sparse_fit_only_where_it_predicts_left_out_masks_clearly_better(
        ) -> None:
    masks, outcomes, estimate, _truth = _long_context(1, 12)
    chosen = correct(masks, outcomes, estimate, penalty=3.0, alpha=0.01)
    assert chosen.fit == "sparse" and chosen.sparse_error is not None
    assert chosen.sparse_error <= 0.5 * chosen.ridge_error
    np.testing.assert_array_equal(chosen.scores, sparse_refit(masks, outcomes, estimate, 0.01))
    # the LDS it reports is the chosen fit's leave-one-out LDS
    assert chosen.lds == pytest.approx(left_out_lds(
        masks, outcomes, lambda m, o: sparse_refit(m, o, estimate, 0.01)))
    # too few masks, or sparse_from=None: the ridge, and its leave-one-out LDS
    for few in (correct(masks[:9], outcomes[:9], estimate, penalty=3.0, alpha=0.01),
                correct(masks, outcomes, estimate, penalty=3.0, alpha=0.01, sparse_from=None)):
        assert few.fit == "ridge" and few.sparse_error is None
    ridge = correct(masks, outcomes, estimate, penalty=3.0, alpha=0.01, sparse_from=None)
    np.testing.assert_array_equal(ridge.scores, refit(masks, outcomes, estimate, 3.0))
    assert ridge.lds == pytest.approx(leave_one_out_lds(masks, outcomes, estimate, 3.0))
    # a margin no fit can meet keeps the ridge though the sparse fit was tried
    strict = correct(masks, outcomes, estimate, penalty=3.0, alpha=0.01, sparse_margin=1e-9)
    assert strict.fit == "ridge" and strict.sparse_error == chosen.sparse_error


def test_a_dense_answer_keeps_the_ridge() -> None:
    """Six units the answer all relies on, an estimate with the right shape: the sparse fit
    does not predict the left-out masks twice as well, so the ridge stays."""
    rng = np.random.default_rng(2)
    truth = np.array([3.0, 2.5, 2.0, 1.5, 1.0, 0.8])
    masks = _masks(rng, 12, 6)
    outcomes = masks @ truth + rng.normal(scale=0.3, size=12)
    chosen = correct(masks, outcomes, truth * 0.9, penalty=3.0, alpha=0.01)
    assert chosen.fit == "ridge" and chosen.sparse_error is not None
    assert chosen.sparse_error > 0.5 * chosen.ridge_error


def test_the_left_out_lds_ranks_kept_scores_not_the_folds_intercepts() -> None:
    """An answer relying on one unit: the sparse fit keeps about that one unit, so half the
    masks tie on its scores. Ranked by predicted outcome, each fold's intercept (the other
    masks' mean) orders the tied masks backwards; the left-out LDS ranks the kept units'
    scores, as the LDS on unseen masks does, and stays closer to that."""
    reported, by_outcome, unseen = [], [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        truth = np.zeros(8)
        truth[2] = 5.0
        estimate = rng.random(8) * 0.2
        estimate[2] = 3.0
        masks = _masks(rng, 12, 8)
        outcomes = masks @ truth + rng.normal(scale=0.5, size=12)
        held = _masks(rng, 64, 8)
        held_outcomes = held @ truth + rng.normal(scale=0.5, size=64)

        def fit(m: np.ndarray, o: np.ndarray, estimate: np.ndarray = estimate) -> np.ndarray:
            return sparse_refit(m, o, estimate, 0.01)

        reported.append(left_out_lds(masks, outcomes, fit))
        by_outcome.append(spearman_lds(predict_left_out(masks, outcomes, fit), outcomes))
        unseen.append(spearman_lds(held @ fit(masks, outcomes), held_outcomes))
    assert np.mean(reported) > np.mean(by_outcome) + 0.04
    assert (np.mean(np.abs(np.subtract(reported, unseen)))
            < np.mean(np.abs(np.subtract(by_outcome, unseen))))
