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
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from relyscope.audits.ablation import spearman_lds

Backwards = Literal["zero", "keep"]


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


def leave_one_out_predictions(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray,
                               penalty: float, backwards: Backwards = "keep") -> np.ndarray:
    """Each mask's outcome [K] as predicted by the estimate refit to the other K - 1 masks
    (their mean outcome plus the mask's centred keep/drop pattern times the refit scores)."""
    predictions = []
    for left_out in range(len(masks)):
        rest = np.arange(len(masks)) != left_out
        scores = refit(masks[rest], outcomes[rest], estimate, penalty, backwards)
        centred_mask = masks[left_out].astype(np.float64) - masks[rest].astype(np.float64).mean(0)
        predictions.append(float(outcomes[rest].mean() + centred_mask @ scores))
    return np.array(predictions)


def leave_one_out_lds(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray,
                      penalty: float, backwards: Backwards = "keep") -> float | None:
    """Spearman over the K masks of each mask's outcome against its leave-one-out prediction;
    None with fewer than 3 masks or a constant side."""
    if len(masks) < 3:
        return None
    return spearman_lds(leave_one_out_predictions(masks, outcomes, estimate, penalty, backwards),
                        outcomes)
