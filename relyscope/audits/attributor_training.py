"""Training the learned attributor: ablation outcomes per case, then one ridge fit of per-head
weights over all cases (AT2's surrogate objective).

Per case: one attention pass gives per-head features per unit (attributor_features); `masks`
random keep/drop masks are scored with the batched scorer (the target is the answer's
logit-scaled probability, as the ablation method's). The surrogate predicts a mask's target as
the sum of the kept units' scores, and a unit's score is its features . w, so the prediction
is (mask @ features) . w plus a per-case constant: a linear model in w, fit by ridge on
per-case centred rows of all training cases jointly, with the penalty chosen by grouped
cross-validation over training cases. Held-out cases give the validation LDS (mean per-case
Spearman of predicted and actual targets on their masks). Outcomes are cached on disk per case
(a hash of the case, the model and the settings), so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relyscope.audits.ablation import random_masks, spearman_lds
from relyscope.audits.attributor_cases import TrainingCase
from relyscope.audits.attributor_features import row_features, unit_features
from relyscope.audits.base import ANSWER, AuditContext, Budget
from relyscope.config import AuditConfig
from relyscope.models import CausalLM

FEATURES_VERSION = 1
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
CV_FOLDS = 4


@dataclass
class CaseOutcomes:
    case_id: str
    kind: str
    granularity: str
    unit_ids: list[str]
    gold: list[str]
    features: np.ndarray  # [U, F]
    masks: np.ndarray  # [M, U] bool
    targets: np.ndarray  # [M] logit-scaled answer probability
    passes: int
    seconds: float


def cache_key(item: TrainingCase, lm: CausalLM, masks: int, keep_prob: float, seed: int) -> str:
    info = lm.info
    text = json.dumps({"case": item.case.model_dump(mode="json"), "granularity": item.granularity,
                       "model": [info.id, info.revision, info.dtype], "masks": masks,
                       "keep_prob": keep_prob, "seed": seed, "features": FEATURES_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def case_outcomes(item: TrainingCase, lm: CausalLM, *, masks: int, keep_prob: float, seed: int,
                  cache_dir: Path | None) -> CaseOutcomes:
    """Features and scored masks of one case, from the cache when it holds them."""
    path = (cache_dir / f"{cache_key(item, lm, masks, keep_prob, seed)}.npz"
            if cache_dir else None)
    if path is not None and path.is_file():
        saved = np.load(path, allow_pickle=False)
        meta = json.loads(str(saved["meta"]))
        return CaseOutcomes(features=saved["features"], masks=saved["masks"],
                            targets=saved["targets"], **meta)
    started, passes_before = time.perf_counter(), lm.cost.forward_passes
    case = item.case if item.case.answer is not None else lm.answer(item.case)
    config = AuditConfig(granularity=item.granularity, seed=seed)
    ctx = AuditContext(case, lm, config, Budget())
    features = unit_features(row_features(ctx.answer_attention().rows, ctx.full, ctx.unit_ids))
    rng = np.random.default_rng([seed, int(cache_key(item, lm, 0, 0, 0)[:8], 16)])
    drawn = random_masks(masks, len(ctx.unit_ids), keep_prob, rng)
    probes = [(ctx.removal([u for u, k in zip(ctx.unit_ids, m, strict=True) if not k]), ANSWER)
              for m in drawn]
    scored = ctx.score(probes)
    targets = np.array([scored[p].logit_prob for p in probes])
    out = CaseOutcomes(item.case.id, item.kind, item.granularity, list(ctx.unit_ids),
                       list(item.gold), features, drawn, targets,
                       lm.cost.forward_passes - passes_before, time.perf_counter() - started)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: getattr(out, k) for k in ("case_id", "kind", "granularity", "unit_ids",
                                             "gold", "passes", "seconds")}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, features=features, masks=drawn, targets=targets, meta=json.dumps(meta))
        tmp.replace(path)
    return out


def _design(data: Sequence[CaseOutcomes]) -> tuple[np.ndarray, np.ndarray]:
    """Rows (mask @ features) and targets, centred within each case."""
    xs, ys = [], []
    for d in data:
        x = d.masks.astype(np.float64) @ d.features.astype(np.float64)
        xs.append(x - x.mean(0))
        ys.append(d.targets - d.targets.mean())
    return np.vstack(xs), np.concatenate(ys)


def ridge(data: Sequence[CaseOutcomes], alpha: float) -> np.ndarray:
    """Per-head weights (raw feature space) minimising squared error + alpha * n * |w|^2 on
    standardised features."""
    x, y = _design(data)
    scale = x.std(0)
    scale[scale == 0] = 1.0
    xs = x / scale
    n, f = xs.shape
    w = np.linalg.solve(xs.T @ xs + alpha * n * np.eye(f), xs.T @ y)
    return w / scale


def case_lds(d: CaseOutcomes, weights: np.ndarray) -> float | None:
    scores = d.features.astype(np.float64) @ weights
    return spearman_lds(d.masks.astype(np.float64) @ scores, d.targets)


def mean_lds(data: Sequence[CaseOutcomes], weights: np.ndarray) -> float:
    values = [v for v in (case_lds(d, weights) for d in data) if v is not None]
    return float(np.mean(values)) if values else float("nan")


def choose_alpha(data: Sequence[CaseOutcomes], seed: int) -> tuple[float, dict[str, float]]:
    """The ridge penalty with the best mean LDS over grouped folds of training cases."""
    folds = np.random.default_rng(seed).permutation(len(data)) % CV_FOLDS
    by_alpha: dict[str, float] = {}
    for alpha in ALPHAS:
        values = []
        for k in range(CV_FOLDS):
            train = [d for d, f in zip(data, folds, strict=True) if f != k]
            test = [d for d, f in zip(data, folds, strict=True) if f == k]
            if train and test:
                values.append(mean_lds(test, ridge(train, alpha)))
        by_alpha[str(alpha)] = float(np.nanmean(values))
    best = max(ALPHAS, key=lambda a: by_alpha[str(a)])
    return best, by_alpha


def split(cases: Sequence[TrainingCase], val_fraction: float, seed: int
          ) -> tuple[list[TrainingCase], list[TrainingCase]]:
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = max(1, round(val_fraction * len(cases)))
    val = {int(i) for i in order[:n_val]}
    return ([c for i, c in enumerate(cases) if i not in val],
            [c for i, c in enumerate(cases) if i in val])


@dataclass
class TrainResult:
    weights: np.ndarray
    alpha: float
    cv: dict[str, float]
    validation_lds: float
    validation_by_kind: dict[str, float]
    attention_lds: float  # uniform weights over heads, on the same held-out cases
    train: list[CaseOutcomes]
    val: list[CaseOutcomes]
    seconds: float


def train(lm: CausalLM, cases: Sequence[TrainingCase], *, masks: int, keep_prob: float,
          seed: int, val_fraction: float, cache_dir: Path | None,
          progress: Callable[[Sequence[TrainingCase]], Sequence[TrainingCase]] = lambda x: x
          ) -> TrainResult:
    started = time.perf_counter()
    outcomes = {c.case.id: case_outcomes(c, lm, masks=masks, keep_prob=keep_prob, seed=seed,
                                         cache_dir=cache_dir) for c in progress(cases)}
    train_cases, val_cases = split(cases, val_fraction, seed)
    train_data = [outcomes[c.case.id] for c in train_cases]
    val_data = [outcomes[c.case.id] for c in val_cases]
    alpha, cv = choose_alpha(train_data, seed)
    weights = ridge(train_data, alpha)
    kinds = sorted({d.kind for d in val_data})
    return TrainResult(
        weights, alpha, cv, mean_lds(val_data, weights),
        {k: mean_lds([d for d in val_data if d.kind == k], weights) for k in kinds},
        mean_lds(val_data, np.ones_like(weights)), train_data, val_data,
        time.perf_counter() - started)
