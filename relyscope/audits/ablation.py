"""Context ablation: random keep/drop masks and a sparse linear surrogate (ContextCite's recipe).

Each of n masks keeps every unit with probability p (seeded). When n is at least twice the
number of possible masks (2^units), random draws would visit most of them anyway (86% on
average), so every mask is used once instead: the same passes or fewer, and a fit on the
whole mask distribution rather than a sample of it. The target is the logit-scaled
probability of the whole answer, log p / (1 - p). A LASSO on standardised masks (alpha 0.01
per answer token, as ContextCite scales it) maps mask -> target; its weights, mapped back to
unstandardised units, are the scores.
The surrogate's LDS is the Spearman correlation between what it predicts for masks it was not
fit on and what the model gives. With `lds_masks` > 0 those are extra held-out masks (extra
forward passes); with 0 (the default) it is cross-validated on the training masks at no extra
cost: 5 folds over the distinct masks (a repeated mask never sits on both sides of a split),
each fold predicted by a surrogate fit on the others, the predictions pooled.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from relyscope.audits.base import ANSWER, AuditContext, MethodResult, Probe
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome
from relyscope.models import TargetScore

MIN_MASKS_TO_FIT = 8
CV_FOLDS = 5


def random_masks(n: int, units: int, keep_prob: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random((n, units)) < keep_prob


def exhaustive(n: int, units: int, keep_prob: float) -> bool:
    """Whether every mask once replaces n random ones (uniform masks are p = 0.5's)."""
    return keep_prob == 0.5 and units <= 16 and n >= 2 * 2**units


def all_masks(units: int) -> np.ndarray:
    return np.array(list(itertools.product((False, True), repeat=units)), dtype=bool)


def fit_surrogate(masks: np.ndarray, targets: np.ndarray, alpha: float, answer_tokens: int = 1,
                  penalty_weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """LASSO on standardised masks; returns weights and bias in unstandardised mask space.

    As in ContextCite, the target is divided by the answer's token count for the fit and the
    weights scaled back after, so the penalty grows with the answer: alpha is per token.
    `penalty_weights` [U] in (0, 1] make it an adaptive LASSO: unit u's penalty is alpha /
    penalty_weights[u] (a standardised column scaled by the weight, its coefficient back)."""
    scaler = StandardScaler()
    scaled = scaler.fit_transform(masks.astype(np.float64))
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    if penalty_weights is not None:
        scaled = scaled * penalty_weights
        scale = scale / penalty_weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lasso = Lasso(alpha=alpha, fit_intercept=True, max_iter=10_000).fit(
            scaled, targets / answer_tokens)
    weights = lasso.coef_ / scale * answer_tokens
    bias = float(lasso.intercept_ * answer_tokens - np.dot(scaler.mean_, weights))
    return weights, bias


def cross_validated_lds(masks: np.ndarray, targets: np.ndarray, alpha: float, seed: int,
                        answer_tokens: int = 1) -> float | None:
    """LDS from out-of-fold predictions, folds drawn over distinct masks (seeded)."""
    distinct, which = np.unique(masks, axis=0, return_inverse=True)
    which = which.reshape(-1)
    if len(distinct) < 2 * CV_FOLDS:
        return None
    fold_of_distinct = np.random.default_rng(seed).permutation(len(distinct)) % CV_FOLDS
    fold = fold_of_distinct[which]
    predicted = np.empty(len(masks))
    for k in range(CV_FOLDS):
        test = fold == k
        weights, bias = fit_surrogate(masks[~test], targets[~test], alpha, answer_tokens)
        predicted[test] = masks[test].astype(np.float64) @ weights + bias
    return spearman_lds(predicted, targets)


def spearman_lds(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    """The LDS: Spearman correlation of predicted and actual targets; None where either side
    is constant (the correlation is undefined)."""
    if np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return None
    return float(spearmanr(predicted, actual).statistic)


class AblationSettings(MethodSettings):
    # training masks; "auto": rounds of masks until the surrogate settles (below)
    ablations: Annotated[int, Field(ge=4, le=4096)] | Literal["auto"] = 64
    keep_prob: float = Field(default=0.5, gt=0.0, lt=1.0)
    alpha: float = Field(default=0.01, gt=0.0)  # LASSO penalty per answer token
    lds_masks: int = Field(default=0, ge=0, le=1024)  # held-out masks; 0: cross-validated LDS
    # ablations="auto": start with auto_start masks, add auto_step a round, and stop once the
    # cross-validated LDS moved by at most auto_lds_tol and the top auto_top_k units stayed
    # the same over a round, or at auto_cap masks
    auto_start: int = Field(default=24, ge=8, le=4096)
    auto_step: int = Field(default=8, ge=1, le=4096)
    auto_cap: int = Field(default=128, ge=8, le=4096)
    auto_lds_tol: float = Field(default=0.03, ge=0.0)
    auto_top_k: int = Field(default=3, ge=1)
    # ablations="auto": also stop at the first round whose cross-validated LDS reaches this
    # (the surrogate is already good enough); None: only when it settles or at the cap
    auto_lds_target: float | None = Field(default=None, gt=-1.0, le=1.0)


class ContextAblation(AuditMethod):
    name = "ablation"
    kind = "reliance"
    votes = True
    priority = 30
    column = 20
    Settings = AblationSettings

    @staticmethod
    def masks(ctx: AuditContext, settings: AblationSettings) -> tuple[np.ndarray, np.ndarray]:
        """Training masks and held-out (LDS) masks, seeded."""
        rng = np.random.default_rng(ctx.config.seed)
        n_units = len(ctx.unit_ids)
        if exhaustive(first_round(settings), n_units, settings.keep_prob):
            train = all_masks(n_units)
        else:  # auto: up to the cap, used as a prefix round by round
            train = random_masks(_most(settings), n_units, settings.keep_prob, rng)
        held_out = random_masks(settings.lds_masks, n_units, settings.keep_prob, rng)
        return train, held_out

    def plan(self, ctx: AuditContext) -> list[Probe]:
        settings = self.settings(ctx)
        train, held_out = self.masks(ctx, settings)
        return [self.probe(ctx, mask)
                for mask in np.vstack([train[:first_round(settings)], held_out])]

    def _adaptive(self, ctx: AuditContext, settings: AblationSettings, train: np.ndarray
                  ) -> tuple[int, str, list[dict[str, object]]]:
        """How many of `train`'s masks to fit on, why it stopped there, and each round."""
        used, rounds = min(settings.auto_start, len(train)), []
        answer_tokens = len(ctx.full.target_ids)
        previous: tuple[float | None, list[str]] | None = None
        while True:
            probes = [self.probe(ctx, mask) for mask in train[:used]]
            scored, cut = ctx.score_available(probes)
            if cut is not None:
                return used, f"budget: {cut}", rounds
            targets = np.array([scored[p].logit_prob for p in probes])
            weights, _bias = fit_surrogate(train[:used], targets, settings.alpha, answer_tokens)
            lds = cross_validated_lds(train[:used], targets, settings.alpha, ctx.config.seed,
                                      answer_tokens)
            top = [ctx.unit_ids[i] for i in np.argsort(-weights, kind="stable")
                   [:settings.auto_top_k]]
            rounds.append({"masks": used, "lds": lds, "top": top})
            if (settings.auto_lds_target is not None and lds is not None
                    and lds >= settings.auto_lds_target):
                return used, f"target: cross-validated LDS {lds:.3f} reached " \
                             f"{settings.auto_lds_target}", rounds
            if (previous is not None and lds is not None and previous[0] is not None
                    and abs(lds - previous[0]) <= settings.auto_lds_tol
                    and set(top) == set(previous[1])):
                return used, "settled: LDS and top-k unchanged over a round", rounds
            if used >= len(train):
                return used, f"cap of {len(train)} masks", rounds
            previous = (lds, top)
            used = min(used + settings.auto_step, len(train))

    def compute(self, ctx: AuditContext, settings: AblationSettings) -> Outcome:
        seed = ctx.config.seed
        train, held_out = self.masks(ctx, settings)
        adaptive: dict[str, object] = {}
        if settings.ablations == "auto" and not exhaustive(
                first_round(settings), len(ctx.unit_ids), settings.keep_prob):
            used, stopped, rounds = self._adaptive(ctx, settings, train)
            train = train[:used]
            adaptive = {"masks_used": used, "stopped": stopped, "rounds": rounds}
        masks = np.vstack([train, held_out])
        probes = [self.probe(ctx, mask) for mask in masks]
        scored, cut = ctx.score_available(probes)
        have = np.array([p in scored for p in probes])
        targets = np.array([scored[p].logit_prob if p in scored else np.nan for p in probes])
        train_rows = np.flatnonzero(have[:len(train)])
        extras: dict[str, object] = {
            "masks_fit": int(len(train_rows)), "keep_prob": settings.keep_prob,
            "alpha": settings.alpha, "alpha_per": "answer token", "seed": seed,
            "target": "log p/(1-p)",
            "distinct_masks": int(len({m.tobytes() for m in masks})),
            "design": "every mask once" if exhaustive(
                first_round(settings), len(ctx.unit_ids), settings.keep_prob) else "random",
            **adaptive}
        if len(train_rows) < MIN_MASKS_TO_FIT:
            return Outcome(dict.fromkeys(ctx.unit_ids), extras, cut or "too few masks")
        answer_tokens = len(ctx.full.target_ids)
        weights, bias = fit_surrogate(train[train_rows], targets[train_rows],
                                      settings.alpha, answer_tokens)
        extras["bias"] = bias
        if len(held_out):
            extras["lds"] = self._lds(held_out, targets[len(train):], weights, bias)
            extras["lds_on"] = f"{len(held_out)} held-out masks"
        else:
            extras["lds"] = cross_validated_lds(train[train_rows], targets[train_rows],
                                                settings.alpha, seed, answer_tokens)
            extras["lds_on"] = f"{CV_FOLDS}-fold cross-validation over the training masks"
        scores: dict[str, float | None] = {
            uid: float(w) for uid, w in zip(ctx.unit_ids, weights, strict=True)}
        return Outcome(scores, extras, cut)

    def claim_scores(self, ctx: AuditContext, result: MethodResult,
                     token_span: tuple[int, int]) -> Outcome | None:
        """A surrogate fit on the same masks with the claim's tokens as the target (as
        ContextCite attributes a span of the answer), its cross-validated LDS alongside."""
        settings = self.settings(ctx)
        train, _held_out = self.masks(ctx, settings)
        train = train[:result.extras.get("masks_used", len(train))]
        probes = [self.probe(ctx, mask) for mask in train]
        scored = ctx.cached(probes)
        rows = [i for i, p in enumerate(probes) if p in scored]
        if len(rows) < MIN_MASKS_TO_FIT:
            return None
        start, end = token_span
        targets = np.array([scored[probes[i]].tokens(start, end).logit_prob for i in rows])
        weights, _bias = fit_surrogate(train[rows], targets, settings.alpha, end - start)
        lds = cross_validated_lds(train[rows], targets, settings.alpha, ctx.config.seed,
                                  end - start)
        return Outcome({uid: float(w) for uid, w in zip(ctx.unit_ids, weights, strict=True)},
                       {"lds": lds, "masks_fit": len(rows)})

    @staticmethod
    def surrogate(ctx: AuditContext, settings: AblationSettings, masks: np.ndarray,
                  scores: list[TargetScore]) -> np.ndarray:
        """The surrogate's weights (per unit, in ctx.unit_ids order) fit on scored masks."""
        targets = np.array([s.logit_prob for s in scores])
        weights, _bias = fit_surrogate(masks, targets, settings.alpha, len(ctx.full.target_ids))
        return weights

    @staticmethod
    def probe(ctx: AuditContext, mask: np.ndarray) -> Probe:
        dropped = [uid for uid, keep in zip(ctx.unit_ids, mask, strict=True) if not keep]
        return ctx.removal(dropped), ANSWER

    @staticmethod
    def _lds(masks: np.ndarray, actual: np.ndarray, weights: np.ndarray, bias: float
             ) -> float | None:
        ok = ~np.isnan(actual)
        if ok.sum() < 3:
            return None
        return spearman_lds(masks[ok].astype(np.float64) @ weights + bias, actual[ok])


def first_round(settings: AblationSettings) -> int:
    """The masks planned up front: all of them, or auto's first round."""
    return settings.auto_start if settings.ablations == "auto" else settings.ablations


def _most(settings: AblationSettings) -> int:
    return settings.auto_cap if settings.ablations == "auto" else settings.ablations
