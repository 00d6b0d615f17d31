"""The learned estimate refit to the outcomes of its own verification masks.

The fast path measures K random keep/drop masks to check the learned estimate. Those outcomes
also correct it: the estimate is scaled by its least-squares fit to them, then ridge-corrected
toward them, the penalty pulling every unit back to the scaled estimate (with K masks and more
units, the estimate keeps the units the masks cannot tell apart). Refit, the estimate is no
longer checked by the masks it was fit to: `leave_one_out_lds` predicts each mask from a refit
without it, which is what a report can honestly call its LDS.

Where the masks order themselves against the estimate (a least-squares scale of 0 or below),
`backwards` decides where the ridge starts: "keep" (the default) from the estimate as it is
(unscaled), "zero" from nothing. Either way the ridge then corrects toward the masks, so many
masks still override a wrong estimate; K masks against many more units are too few to start
from nothing (bench.attributor --steps backwards, bench.fast_refit).

On long contexts of many small units the estimate ranks the units the answer relies on first
but gives every other unit a tail of its own, and the ridge spreads whatever the masks leave
unexplained over all of them. `sparse_refit` is the ablation method's LASSO with the estimate
as its prior: the masks size the units the estimate ranks high and leave the rest at 0.
`correct` picks between the two per case, by which predicts the left-out masks better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from relyscope.audits.ablation import fit_surrogate, spearman_lds

Backwards = Literal["zero", "keep"]
Fit = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (masks [K, U], outcomes [K]) -> scores
PRIOR_FLOOR = 0.05  # the sparse fit's weakest prior: 20x the penalty of the estimate's top unit


def _centred(masks: np.ndarray, outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    design = masks.astype(np.float64)
    return design - design.mean(0), outcomes.astype(np.float64) - outcomes.mean()


def _scale(design: np.ndarray, centred: np.ndarray, estimate: np.ndarray) -> float:
    predicted = design @ estimate
    power = float(predicted @ predicted)
    return float(predicted @ centred) / power if power > 0 else 1.0


def estimate_scale(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray) -> float:
    """The least-squares factor that maps the estimate's predictions for the masks onto
    their outcomes (1 where the estimate predicts no differences between them)."""
    return _scale(*_centred(masks, outcomes), estimate)


def refit(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray,
          penalty: float, backwards: Backwards = "keep") -> np.ndarray:
    """Unit scores from `estimate` [U] and K measured masks [K, U] (1 = unit kept) with their
    outcomes [K]; the intercept is left to the masks' means."""
    if penalty <= 0:
        raise ValueError(f"penalty: must be > 0, got {penalty}")
    design, centred = _centred(masks, outcomes)
    scale = _scale(design, centred, estimate)
    if scale <= 0:
        scale = 1.0 if backwards == "keep" else 0.0
    start = scale * estimate
    gram = design.T @ design + penalty * np.eye(len(estimate))
    return start + np.linalg.solve(gram, design.T @ (centred - design @ start))


def sparse_refit(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray, alpha: float,
                 answer_tokens: int = 1) -> np.ndarray:
    """The ablation method's LASSO on the K masks with the estimate as its prior (an adaptive
    LASSO): a unit's penalty is alpha over its magnitude's share of the estimate's largest,
    floored at PRIOR_FLOOR. The masks size the units the estimate ranks high and leave the
    rest at 0, where the ridge refit would spread what they leave unexplained over them."""
    magnitude = np.abs(estimate.astype(np.float64))
    top = float(magnitude.max()) if len(magnitude) else 0.0
    prior = np.maximum(magnitude / top, PRIOR_FLOOR) if top > 0 else np.ones_like(magnitude)
    return fit_surrogate(masks, outcomes, alpha, answer_tokens, penalty_weights=prior)[0]


def _left_out(masks: np.ndarray, outcomes: np.ndarray, fit: Fit
              ) -> tuple[np.ndarray, np.ndarray]:
    """For each mask, from `fit` on the other K - 1: its predicted outcome (their mean outcome
    plus the mask's centred keep/drop pattern times the fit's scores) and its kept units'
    summed scores (the linear predictor an LDS ranks)."""
    predictions, kept_scores = [], []
    for left_out in range(len(masks)):
        rest = np.arange(len(masks)) != left_out
        scores = fit(masks[rest], outcomes[rest])
        mask = masks[left_out].astype(np.float64)
        kept_scores.append(float(mask @ scores))
        centred_mask = mask - masks[rest].astype(np.float64).mean(0)
        predictions.append(float(outcomes[rest].mean() + centred_mask @ scores))
    return np.array(predictions), np.array(kept_scores)


def predict_left_out(masks: np.ndarray, outcomes: np.ndarray, fit: Fit) -> np.ndarray:
    """Each mask's outcome [K] as predicted by `fit` on the other K - 1 masks (their mean
    outcome plus the mask's centred keep/drop pattern times the fit's scores)."""
    return _left_out(masks, outcomes, fit)[0]


def _rank_lds(kept_scores: np.ndarray, outcomes: np.ndarray) -> float | None:
    return spearman_lds(kept_scores, outcomes) if len(outcomes) >= 3 else None


def left_out_lds(masks: np.ndarray, outcomes: np.ndarray, fit: Fit) -> float | None:
    """Spearman over the K masks of each mask's outcome against its kept units' summed scores
    from `fit` on the other masks; None with fewer than 3 masks or a constant side.

    It ranks the linear predictor, as the LDS on unseen masks does, not the predicted
    outcome: a fold's intercept is the other masks' mean outcome, which falls as the left-out
    outcome rises, and among masks the scores tie (a sparse fit keeping one unit ties half of
    them) that alone would order them backwards."""
    return _rank_lds(_left_out(masks, outcomes, fit)[1], outcomes)


def leave_one_out_predictions(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray,
                               penalty: float, backwards: Backwards = "keep") -> np.ndarray:
    """predict_left_out for the ridge refit."""
    return predict_left_out(masks, outcomes, partial(
        refit, estimate=estimate, penalty=penalty, backwards=backwards))


def leave_one_out_lds(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray,
                      penalty: float, backwards: Backwards = "keep") -> float | None:
    """left_out_lds for the ridge refit."""
    return left_out_lds(masks, outcomes, partial(
        refit, estimate=estimate, penalty=penalty, backwards=backwards))


@dataclass(frozen=True)
class Correction:
    """The estimate corrected by K measured masks: the scores, which fit gave them ("ridge" or
    "sparse"), that fit's leave-one-out LDS over the masks, and each fit's leave-one-out mean
    squared error (sparse: None where it was not tried)."""

    scores: np.ndarray
    fit: Literal["ridge", "sparse"]
    lds: float | None
    ridge_error: float
    sparse_error: float | None


def correct(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray, *, penalty: float,
            backwards: Backwards = "keep", alpha: float, answer_tokens: int = 1,
            sparse_from: int | None = 10, sparse_margin: float = 0.5) -> Correction:
    """The ridge refit, or, from `sparse_from` masks on, the sparse refit where it predicts the
    left-out masks clearly better: a leave-one-out squared error at most `sparse_margin` times
    the ridge's (and at least one unit kept). On long contexts of many small units the
    estimate's ranking is right but its long tail is not, and the sparse fit drops the tail;
    on short contexts the ridge's dense correction usually wins and is kept. Below
    `sparse_from` masks two units the answer relies on too often share one keep/drop pattern
    (or one is never dropped) for a sparse fit to tell them apart (bench.fast_refit)."""
    ridge: Fit = partial(refit, estimate=estimate, penalty=penalty, backwards=backwards)
    ridge_left_out, ridge_kept = _left_out(masks, outcomes, ridge)
    ridge_error = float(np.mean((ridge_left_out - outcomes) ** 2))
    chosen: Correction | None = None
    sparse_error = None
    if sparse_from is not None and len(masks) >= sparse_from:
        sparse: Fit = partial(sparse_refit, estimate=estimate, alpha=alpha,
                              answer_tokens=answer_tokens)
        sparse_left_out, sparse_kept = _left_out(masks, outcomes, sparse)
        sparse_error = float(np.mean((sparse_left_out - outcomes) ** 2))
        scores = sparse(masks, outcomes)
        if np.any(scores) and sparse_error <= sparse_margin * ridge_error:
            chosen = Correction(scores, "sparse", _rank_lds(sparse_kept, outcomes),
                                ridge_error, sparse_error)
    if chosen is None:
        chosen = Correction(ridge(masks, outcomes), "ridge", _rank_lds(ridge_kept, outcomes),
                            ridge_error, sparse_error)
    return chosen
