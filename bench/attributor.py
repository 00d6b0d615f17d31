"""The learned attributor against attention and ablation, on cases never used in training.

Steps (python -m bench.attributor [--steps quality,calibrate,speed,...]):
- quality: held-out cases (planted single and redundant facts, real text of the held-out
  questions with source and sentence units, tool traces; a seed training never used; 50 by
  default, 20 of them single planted; planted and tool cases first, `--max-minutes` stops
  starting cases). Each case: one attention pass and `--train-masks` + `--test-masks` random
  masks scored once (cached on disk, so a rerun resumes). LDS on the test masks of: the
  learned estimate, raw attention (uniform weights over heads; the provenance method's
  ranking) and the ablation surrogate fit on the train masks (ContextCite's LASSO, the
  `ablation` method's). Precision@1 on single-source planted cases for the three. A report's
  `verify=K` check replayed on K-subsets of the test masks.
- answers: the single planted cases' answers, and precision@1 over those that state the
  planted value (run after quality).
- compare: another weights file (`--weights`, e.g. a larger training run's) on the quality
  step's cases (cached: no model pass beyond a missing case).
- ceiling: where the LDS gap lies (cached outcomes, no model pass): per held-out case, the
  shipped weights, ridge weights fit on its own train masks, a 0/1 score of the gold units,
  and how well the shipped weights rank the non-gold units' ablation effects.
- variants: other training recipes (more cases, per-case weighted or rank targets, feature
  transforms), each fit as train-attributor fits, on the quality step's held-out cases
  (cached outcomes; `--train-cache-dir` holds a `train-attributor --cases 110` run's).
- calibrate: the learned estimate refit to a report's own K verification masks (scaled,
  then ridge-corrected; penalty chosen on training-generator cases the shipped weights were
  not fit on) on the quality step's cases (cached outcomes): held-out LDS beside the plain
  estimate and the ablation surrogate on the same K masks (K = 4, 8, 12, 16), a per-case penalty
  by leave-one-out error, and how close a leave-one-out LDS over the K masks comes to it.
- backwards: the refit at the default penalty where a case's K masks order themselves against
  the estimate, the ridge started from nothing (shipped before) or from the unscaled estimate
  (the default), on the quality step's cases (cached outcomes), each disjoint block of K
  masks; how many blocks that is.
- sparse: the shipped correction (the ridge refit, or from 10 masks the estimate-weighted
  LASSO where it predicts left-out masks clearly better) beside the ridge alone, on the
  quality step's cases (cached outcomes), each disjoint block of K masks.
- confirm: the fast path's default (the refit to `verify` masks, both chosen on the quality
  step's cases) on 50 cases of another seed (`--confirm-seed`), which no choice saw: the
  quality step's columns there and the refit's LDS per disjoint block of `verify` masks.
- speed: a 24-unit planted case, side by side in one process, an empty score cache per audit:
  the fast preset at 12 (the default, twice), 4, 0, 8 and 16 verification masks vs
  attention + the 64-mask ablation audit and the full default audit, and one forward pass of
  the same case; seconds, passes and scored tokens.
- profile: where one fast audit's seconds go (cProfile).
- designs: token-trie tokens of verification mask designs on the speed case (no model pass).
- retrain: the shipped weights' recorded `relyscope train-attributor` command run as is with a
  fresh cache and a temporary --out; its validation LDS beside the shipped one (target: within
  0.03).
Writes bench/results/attributor.json and .md with the commit, the machine and its load.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr

from bench import machine
from bench.report import fmt, write_json
from relyscope.audits import run_audit
from relyscope.audits.ablation import fit_surrogate, random_masks, spearman_lds
from relyscope.audits.attributor_cases import CaseMaker, training_cases
from relyscope.audits.attributor_training import (
    ALPHAS,
    CaseOutcomes,
    case_outcomes,
    choose_alpha,
    ridge,
    split,
)
from relyscope.audits.attributor_weights import packaged_path, weights_for
from relyscope.audits.base import ANSWER, AuditContext, Budget
from relyscope.audits.estimate_refit import (
    Correction,
    correct,
    estimate_scale,
    leave_one_out_lds,
    leave_one_out_predictions,
    refit,
)
from relyscope.audits.learned import LearnedSettings
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, Variant
from relyscope.models.packaged import relyscope_home
from relyscope.models.scoring import MemoryScoreCache
from relyscope.models.tree import TokenTrie

RESULTS = Path(__file__).parent / "results"
STEPS = ("quality", "compare", "ceiling", "variants", "calibrate", "backwards", "sparse",
         "confirm",
         "speed", "profile", "designs", "retrain")
HELD_OUT_SEED = 1001  # training uses seed 0 and the even-numbered demo questions


def _lds(masks: np.ndarray, targets: np.ndarray, scores: np.ndarray) -> float | None:
    return spearman_lds(masks.astype(np.float64) @ scores, targets)


def quality(lm: CausalLM, n_cases: int, train_masks: int, test_masks: int,
            cache: Path, max_minutes: float | None = None,
            weights_path: str | None = None, seed: int = HELD_OUT_SEED) -> dict[str, Any]:
    """Planted and tool cases first (short), then real text (long passages, sentence units);
    with `max_minutes`, no case starts after that time and the summary covers the cases
    that ran (the settings say how many were asked for; the cache keeps the rest's work)."""
    weights = weights_for(lm.info.id, lm.num_layers, lm.num_heads, weights_path).vector()
    rows = []
    cases = training_cases(n_cases, seed, real_split="held_out")
    cases.sort(key=lambda c: c.kind == "real")  # stable: the generated order otherwise
    began = time.perf_counter()
    for item in cases:
        if max_minutes is not None and time.perf_counter() - began > 60 * max_minutes:
            print(f"time limit {max_minutes} min: {len(rows)} of {len(cases)} cases ran",
                  flush=True)
            break
        started = time.perf_counter()
        d: CaseOutcomes = case_outcomes(item, lm, masks=train_masks + test_masks,
                                        keep_prob=0.5, seed=seed, cache_dir=cache)
        train_m, test_m = d.masks[:train_masks], d.masks[train_masks:]
        train_t, test_t = d.targets[:train_masks], d.targets[train_masks:]
        learned = d.features.astype(np.float64) @ weights
        attention = d.features.astype(np.float64).sum(1)
        ablation, _bias = fit_surrogate(train_m, train_t, 0.01, 1)
        scores = {"learned": learned, "attention": attention, "ablation": ablation}
        row: dict[str, Any] = {
            "case": d.case_id, "kind": d.kind, "granularity": d.granularity,
            "units": len(d.unit_ids), "gold": d.gold,
            "seconds": round(time.perf_counter() - started, 1),
            "lds": {k: _lds(test_m, test_t, v) for k, v in scores.items()},
            "top1": {k: d.unit_ids[int(np.argmax(v))] for k, v in scores.items()},
            "verify_subsets": _verify_subsets(test_m, test_t, learned)}
        rows.append(row)
        print(d.case_id, row["lds"], row["top1"], d.gold, flush=True)
    methods = ("learned", "attention", "ablation")
    single = [r for r in rows if r["kind"] == "single"]
    summary: dict[str, Any] = {
        "precision_at_1_single_planted": {
            m: sum(r["top1"][m] in r["gold"] for r in single) / len(single) if single else None
            for m in methods},
        "single_planted_cases": len(single)}
    groups = {"all": rows, **{f"{k}/{g}": [r for r in rows if (r["kind"], r["granularity"])
                                            == (k, g)]
                              for k, g in sorted({(r["kind"], r["granularity"]) for r in rows})}}
    summary["mean_lds"] = {
        name: {m: _mean([r["lds"][m] for r in group]) for m in methods}
        for name, group in groups.items()}
    summary["cases_per_group"] = {name: len(group) for name, group in groups.items()}
    summary["verify_k"] = {
        str(k): {stat: _mean([r["verify_subsets"][str(k)][stat] for r in rows
                             if r["verify_subsets"].get(str(k))])
                 for stat in ("mean_abs_error", "below_min_lds")}
        for k in VERIFY_KS}
    return {"settings": {"cases": n_cases, "cases_run": len(rows), "max_minutes": max_minutes,
                         "seed": seed, "train_masks": train_masks,
                         "test_masks": test_masks, "ablation_alpha": 0.01},
            "summary": summary, "cases": rows}


def planted_answers(lm: CausalLM, q: dict[str, Any]) -> dict[str, Any]:
    """The quality step's single planted cases with the model's (greedy, deterministic)
    answer, and whether it states the planted value: where it does not, the planted unit is
    not what the answer relied on, so precision@1 is also given over the cases that state it."""
    seed = q["settings"].get("seed", HELD_OUT_SEED)
    items = {c.case.id: c for c in training_cases(q["settings"]["cases"], seed,
                                                 real_split="held_out")}
    single = [r for r in q["cases"] if r["kind"] == "single"]
    for row in single:
        item = items[row["case"]]
        answer = lm.answer(item.case).answer or ""
        row["answer"] = answer
        row["answer_states_value"] = str(item.case.metadata["value"]).lower() in answer.lower()
    stated = [r for r in single if r["answer_states_value"]]
    q["summary"]["precision_at_1_single_planted_value_stated"] = {
        m: sum(r["top1"][m] in r["gold"] for r in stated) / len(stated) if stated else None
        for m in ("learned", "attention", "ablation")}
    q["summary"]["single_planted_value_stated_cases"] = len(stated)
    return q


def _rows(d: CaseOutcomes, rows: slice | np.ndarray) -> CaseOutcomes:
    return CaseOutcomes(d.case_id, d.kind, d.granularity, d.unit_ids, d.gold, d.features,
                        d.masks[rows], d.targets[rows], 0, 0.0)


def _case_alpha(d: CaseOutcomes, train_masks: int, folds: int = 4) -> float:
    """The ridge penalty with the best mean LDS over folds of the case's own train masks."""
    fold = np.arange(train_masks) % folds
    scores = {}
    for alpha in ALPHAS:
        values = [_lds(d.masks[:train_masks][fold == k], d.targets[:train_masks][fold == k],
                       d.features.astype(np.float64)
                       @ ridge([_rows(d, np.flatnonzero(fold != k))], alpha))
                  for k in range(folds)]
        scores[alpha] = _mean(values) or -1.0
    return max(ALPHAS, key=lambda a: scores[a])


def _filler_agreement(d: CaseOutcomes, surrogate: np.ndarray, scores: np.ndarray
                      ) -> float | None:
    """Spearman of two unit scorings over the units outside the gold (the small effects that
    order masks agreeing on the gold units); None with fewer than 4 such units."""
    fillers = [i for i, u in enumerate(d.unit_ids) if u not in d.gold]
    if len(fillers) < 4 or np.ptp(surrogate[fillers]) == 0 or np.ptp(scores[fillers]) == 0:
        return None
    return float(spearmanr(surrogate[fillers], scores[fillers])[0])


def features_ceiling(lm: CausalLM, q: dict[str, Any], cache: Path) -> dict[str, Any]:
    """Where the LDS gap to ablation lies (the quality step's cache: no model pass). Per
    held-out case, on its test masks: the shipped weights; ridge weights fit on the case's own
    train masks (the penalty by cross-validation over those masks; with more heads than
    units this can fit any unit scores, so it is a per-case surrogate, not a bound on one
    weight vector); a score of 1 on the gold units and 0 on the rest (what ordering the masks
    by whether they keep the gold is worth); and over the units outside the gold, how well
    the shipped weights' scores rank the ablation surrogate's (Spearman)."""
    weights = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None)
    train_masks = q["settings"]["train_masks"]
    by_group: dict[str, list[dict[str, float | None]]] = {}
    for item in training_cases(q["settings"]["cases"], HELD_OUT_SEED, real_split="held_out"):
        d = case_outcomes(item, lm, masks=train_masks + q["settings"]["test_masks"],
                          keep_prob=0.5, seed=HELD_OUT_SEED, cache_dir=cache)
        test_m, test_t = d.masks[train_masks:], d.targets[train_masks:]
        feats = d.features.astype(np.float64)
        shipped = feats @ weights.vector()
        surrogate, _bias = fit_surrogate(d.masks[:train_masks], d.targets[:train_masks], 0.01, 1)
        gold = np.array([float(u in d.gold) for u in d.unit_ids])
        row = {"shipped": _lds(test_m, test_t, shipped),
               "per_case_fit": _lds(test_m, test_t, feats @ ridge(
                   [_rows(d, slice(0, train_masks))], _case_alpha(d, train_masks))),
               "gold_indicator": _lds(test_m, test_t, gold) if 0 < gold.sum() < len(gold)
               else None,
               "filler_agreement": _filler_agreement(d, surrogate, shipped)}
        for name in ("all", f"{d.kind}/{d.granularity}"):
            by_group.setdefault(name, []).append(row)
    columns = ("shipped", "per_case_fit", "gold_indicator", "filler_agreement")
    return {"alphas": list(ALPHAS), "mean_lds": {
        name: {**{c: _mean([r[c] for r in rows]) for c in columns},
               "cases": len(rows),
               "cases_with_gold": sum(r["gold_indicator"] is not None for r in rows)}
        for name, rows in by_group.items()}}


def _spread_weighted(d: CaseOutcomes) -> CaseOutcomes:
    """The case's rows divided by the spread of its targets (every case weighs the same in
    the squared error; the LDS of its rows does not change)."""
    spread = float(d.targets.std()) or 1.0
    return dataclasses.replace(d, features=d.features / spread, targets=d.targets / spread)


def _rank_targets(d: CaseOutcomes) -> CaseOutcomes:
    """Targets replaced by their ranks, scaled to the targets' spread (the LDS is a rank
    correlation: the fit then sees what it is judged on, not the size of each swing)."""
    ranks = rankdata(d.targets)
    return dataclasses.replace(
        d, targets=(ranks - ranks.mean()) / (ranks.std() or 1.0) * float(d.targets.std()))


def _features(transform: Callable[[np.ndarray], np.ndarray]
              ) -> Callable[[CaseOutcomes], CaseOutcomes]:
    return lambda d: dataclasses.replace(d, features=transform(d.features.astype(np.float64)))


# name -> (training cases, a transform of each case's outcomes before the fit, whether it also
# applies at held-out: a feature transform changes what the weights read, a target transform
# only the fit)
_VARIANTS: dict[str, tuple[int, Callable[[CaseOutcomes], CaseOutcomes] | None, bool]] = {
    "shipped recipe, 40 cases": (40, None, False),
    "shipped recipe, 110 cases": (110, None, False),
    "targets weighted per case, 110": (110, _spread_weighted, False),
    "rank targets, 110": (110, _rank_targets, False),
    "sqrt features, 110": (110, _features(np.sqrt), True),
    "features + squares, 110": (110, _features(lambda f: np.hstack([f, f ** 2])), True),
    "head-normalised features, 110": (
        110, _features(lambda f: f / (f.sum(0, keepdims=True) + 1e-9)), True),
    "a constant per-unit feature (a score for being kept), 110": (
        110, _features(lambda f: np.hstack([f, np.ones((f.shape[0], 1))])), True),
    "log features, 110": (110, _features(lambda f: np.log(f + 1e-3)), True),
}


def _linear_scores(d: CaseOutcomes, weights: np.ndarray,
                   transform: Callable[[CaseOutcomes], CaseOutcomes] | None) -> np.ndarray:
    return (transform(d) if transform else d).features.astype(np.float64) @ weights


def held_out_outcomes(lm: CausalLM, q: dict[str, Any], held_cache: Path) -> list[CaseOutcomes]:
    """The quality step's held-out cases with their train and test masks' outcomes (from its
    cache; a missing case is scored)."""
    return [case_outcomes(c, lm, masks=q["settings"]["train_masks"] + q["settings"]["test_masks"],
                          keep_prob=0.5, seed=HELD_OUT_SEED, cache_dir=held_cache)
            for c in training_cases(q["settings"]["cases"], HELD_OUT_SEED, real_split="held_out")]


def held_out_quality(held: Sequence[CaseOutcomes], score: Callable[[CaseOutcomes], np.ndarray],
                     test_from: int) -> tuple[dict[str, float | None], float | None]:
    """Mean LDS on each held-out case's masks from `test_from` on, over all cases and per
    kind/granularity, and precision@1 over the single planted cases; each case scored once."""
    groups: dict[str, list[float | None]] = {}
    hits = []
    for d in held:
        scores = score(d)
        value = _lds(d.masks[test_from:], d.targets[test_from:], scores)
        for group in ("all", f"{d.kind}/{d.granularity}"):
            groups.setdefault(group, []).append(value)
        if d.kind == "single":
            hits.append(d.unit_ids[int(np.argmax(scores))] in d.gold)
    return ({g: _mean(v) for g, v in groups.items()},
            float(np.mean(hits)) if hits else None)


def variants(lm: CausalLM, q: dict[str, Any], held_cache: Path, train_cache: Path,
             masks: int = 32) -> dict[str, Any]:
    """Training recipes other than the shipped one, scored on the quality step's held-out
    cases: each fit as `relyscope train-attributor` fits (the first N of its generated cases,
    its 75% training split, the ridge penalty by grouped cross-validation over training cases,
    nothing chosen on the held-out cases). Outcomes come from the caches (`train_cache`: a
    `train-attributor --cases 110 --masks 32 --cache-dir` run's); a missing case is scored."""
    most = max(n for n, _t, _h in _VARIANTS.values())
    items = training_cases(most, 0)
    train_all = [case_outcomes(c, lm, masks=masks, keep_prob=0.5, seed=0, cache_dir=train_cache)
                 for c in items]
    held = held_out_outcomes(lm, q, held_cache)
    test_from = q["settings"]["train_masks"]
    rows = {}
    for name, (n, transform, at_held_out) in _VARIANTS.items():
        fit_on, _val = split(items[:n], 0.25, 0)
        keep = {c.case.id for c in fit_on}
        data = [d for d in train_all[:n] if d.case_id in keep]
        data = [transform(d) for d in data] if transform else data
        alpha, _cv = choose_alpha(data, 0)
        weights = ridge(data, alpha)
        mean_lds, precision = held_out_quality(
            held, partial(_linear_scores, weights=weights,
                          transform=transform if at_held_out else None), test_from)
        rows[name] = {"training_cases": len(data), "alpha": alpha, "mean_lds": mean_lds,
                      "precision_at_1_single_planted": precision}
        print(name, rows[name]["mean_lds"]["all"], flush=True)
    return {"held_out_cases": len(held), "variants": rows}


CALIBRATE_PENALTIES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
CALIBRATE_KS = (4, 8, 12, 16)  # at most 16: the selection cases keep their last 16 of 32


def confirm(lm: CausalLM, seed: int, n_cases: int, train_masks: int, test_masks: int,
            cache: Path) -> dict[str, Any]:
    """The fast path's default as shipped (the refit to `verify` masks at the default penalty,
    both chosen on the quality step's cases) on cases of another seed, which no choice saw:
    the quality step's columns there, and the refit from each disjoint block of `verify`
    train masks against the same target (the ablation surrogate's LDS minus 0.05)."""
    q = planted_answers(lm, quality(lm, n_cases, train_masks, test_masks, cache, seed=seed))
    stated = {r["case"] for r in q["cases"] if r.get("answer_states_value")}
    shipped = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None).vector()
    settings = LearnedSettings()
    held = [case_outcomes(c, lm, masks=train_masks + test_masks, keep_prob=0.5, seed=seed,
                          cache_dir=cache)
            for c in training_cases(n_cases, seed, real_split="held_out")]
    tokens = answer_tokens(lm, n_cases, seed)
    k = settings.verify
    blocks = [held_out_quality(held, lambda d, b=b: shipped_refit(d, b * k, k, shipped, tokens,
                                                                  settings).scores, train_masks)
              for b in range(train_masks // k)]
    ridge = _by_block(held, k, train_masks, lambda d: d.features.astype(np.float64) @ shipped,
                      partial(refit, penalty=settings.refit_penalty,
                              backwards=settings.refit_backwards))
    first = {d.case_id: shipped_refit(d, 0, k, shipped, tokens, settings).scores
             for d in held if d.case_id in stated}
    refit_stated = [d.unit_ids[int(np.argmax(first[d.case_id]))] in d.gold
                    for d in held if d.case_id in stated]
    return {"seed": seed, "verify": settings.verify, "penalty": settings.refit_penalty,
            "backwards": settings.refit_backwards,
            "sparse_from": settings.refit_sparse_from,
            "sparse_margin": settings.refit_sparse_margin,
            "ridge_lds_by_mask_block": [lds for lds, _p in ridge],
            "ridge_precision_at_1_by_mask_block": [p for _lds, p in ridge],
            "refit_precision_at_1_value_stated": float(np.mean(refit_stated)) if refit_stated
            else None,
            "cases": q["cases"],
            "summary": q["summary"], "settings": q["settings"],
            "refit_lds_by_mask_block": [lds for lds, _p in blocks],
            "refit_precision_at_1_by_mask_block": [p for _lds, p in blocks],
            "target": q["summary"]["mean_lds"]["all"]["ablation"] - 0.05}


def _by_block(held: Sequence[CaseOutcomes], k: int, test_from: int,
              prior: Callable[[CaseOutcomes], np.ndarray],
              fit: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
              ) -> list[tuple[dict[str, float | None], float | None]]:
    """held_out_quality of the estimate `fit` to each disjoint block of k train masks."""
    return [held_out_quality(held, lambda d, b=b: fit(d.masks[b * k:(b + 1) * k],
                                                      d.targets[b * k:(b + 1) * k], prior(d)),
                             test_from)
            for b in range(test_from // k)]


def _loo_penalty_refit(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray
                       ) -> np.ndarray:
    """The refit with each case's own penalty from CALIBRATE_PENALTIES: the one whose
    leave-one-out predictions of the K outcomes have the least squared error."""
    def error(penalty: float) -> float:
        predicted = leave_one_out_predictions(masks, outcomes, estimate, penalty)
        return float(np.mean((predicted - outcomes) ** 2))
    return refit(masks, outcomes, estimate, min(CALIBRATE_PENALTIES, key=error))


def calibrate(lm: CausalLM, q: dict[str, Any], held_cache: Path, train_cache: Path,
              selection_cases: int = 110, masks: int = 32) -> dict[str, Any]:
    """The learned estimate refit to the fast path's own K verification masks (the `learned`
    method's refit, relyscope.audits.estimate_refit;
    cached outcomes, no model pass): the first K of each held-out case's train masks stand in
    for the report's K, its test masks score it. The penalty is chosen on the training
    generator's cases that the shipped weights were not fit on (`selection_cases` of them, less
    the shipped fit split; update from their first K masks, LDS on their last 16), nothing on
    the held-out cases. Beside it: the plain estimate, ContextCite's LASSO on the same K
    masks, and how far a report's leave-one-out LDS over its K masks lands from the
    calibrated estimate's held-out LDS."""
    shipped = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None)
    weights = shipped.vector()
    fit_on, _val = split(training_cases(int(shipped.provenance["cases"]), 0), 0.25, 0)
    fit_ids = {c.case.id for c in fit_on}
    select = [case_outcomes(c, lm, masks=masks, keep_prob=0.5, seed=0, cache_dir=train_cache)
              for c in training_cases(selection_cases, 0) if c.case.id not in fit_ids]
    held = held_out_outcomes(lm, q, held_cache)
    test_from = q["settings"]["train_masks"]

    def prior(d: CaseOutcomes) -> np.ndarray:
        return d.features.astype(np.float64) @ weights

    default_penalty = LearnedSettings().refit_penalty
    learned_lds, learned_p1 = held_out_quality(held, prior, test_from)
    rows: dict[str, Any] = {"learned (0 masks)": {"penalty": None, "mean_lds": learned_lds,
                                                  "precision_at_1_single_planted": learned_p1}}
    for k in CALIBRATE_KS:
        by_penalty = {p: _mean([_lds(d.masks[masks - 16:], d.targets[masks - 16:],
                                     refit(d.masks[:k], d.targets[:k], prior(d), p))
                                for d in select]) or -1.0
                      for p in CALIBRATE_PENALTIES}
        penalty = max(CALIBRATE_PENALTIES, key=lambda p: by_penalty[p])
        # the refit from each disjoint block of k train masks (how much the draw moves it);
        # the first block is the one a report's row below stands for
        block_quality = _by_block(held, k, test_from, prior, partial(refit, penalty=penalty))
        mean_lds, precision = block_quality[0]
        # what a report gets: the method's default penalty, whatever the selection chose
        at_default = (block_quality if penalty == default_penalty else
                      _by_block(held, k, test_from, prior,
                                partial(refit, penalty=default_penalty)))
        per_case = _by_block(held, k, test_from, prior, _loo_penalty_refit)
        per_case_selection = _mean([_lds(d.masks[masks - 16:], d.targets[masks - 16:],
                                         _loo_penalty_refit(d.masks[:k], d.targets[:k], prior(d)))
                                    for d in select])
        errors: list[float | None] = []
        reports: list[float | None] = []
        for d in held:
            on_test = _lds(d.masks[test_from:], d.targets[test_from:],
                           refit(d.masks[:k], d.targets[:k], prior(d), default_penalty))
            reported = leave_one_out_lds(d.masks[:k], d.targets[:k], prior(d), default_penalty)
            reports.append(reported)
            if on_test is not None and reported is not None:
                errors.append(abs(reported - on_test))
        given = [r for r in reports if r is not None]
        blocks = [lds["all"] for lds, _precision in block_quality]
        rows[_fixed_row(k)] = {
            "masks": k, "lds_all_by_mask_block": blocks,
            "penalty": penalty, "selection_lds_by_penalty": by_penalty, "mean_lds": mean_lds,
            "precision_at_1_single_planted": precision,
            "leave_one_out_abs_error": _mean(errors),
            "leave_one_out_mean": _mean(reports),
            "leave_one_out_below_min_lds": float(np.mean(np.array(given) < 0.2)) if given
            else None,
            "default_penalty": default_penalty,
            "lds_all_by_mask_block_at_default_penalty": [lds["all"] for lds, _p in at_default]}
        rows[f"learned, refit to its {k} masks, penalty per case by leave-one-out error"] = {
            "penalty": None, "masks": k, "mean_lds": per_case[0][0],
            "precision_at_1_single_planted": per_case[0][1],
            "lds_all_by_mask_block": [lds["all"] for lds, _p in per_case],
            "selection_lds": per_case_selection}
        lasso_lds, lasso_p1 = held_out_quality(
            held, lambda d, k=k: fit_surrogate(d.masks[:k], d.targets[:k], 0.01, 1)[0],
            test_from)
        rows[f"ablation surrogate on the same {k} masks"] = {
            "penalty": 0.01, "mean_lds": lasso_lds, "precision_at_1_single_planted": lasso_p1}
        print(k, penalty, mean_lds["all"], flush=True)
    return {"held_out_cases": len(held), "selection_cases": len(select), "rows": rows}


def backwards(lm: CausalLM, q: dict[str, Any], held_cache: Path) -> dict[str, Any]:
    """The refit at the method's default penalty when a case's K masks order themselves
    against the estimate (least-squares scale of 0 or below): the ridge started from nothing
    ("zero", shipped before) or from the unscaled estimate ("keep", the default), on the
    quality step's held-out cases, each disjoint block of K train masks (cached outcomes, no
    model pass). Where no block of a case is backwards the two are identical."""
    weights = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None).vector()
    held = held_out_outcomes(lm, q, held_cache)
    test_from = q["settings"]["train_masks"]
    penalty = LearnedSettings().refit_penalty
    prior = partial(_linear_scores, weights=weights, transform=None)
    rows: dict[str, Any] = {}
    for k in CALIBRATE_KS:
        blocks = test_from // k
        count = sum(estimate_scale(d.masks[b * k:(b + 1) * k], d.targets[b * k:(b + 1) * k],
                                   prior(d)) <= 0 for d in held for b in range(blocks))
        rows[str(k)] = {"backwards_case_blocks": int(count), "case_blocks": len(held) * blocks}
        for mode in ("zero", "keep"):
            quality = _by_block(held, k, test_from, prior,
                                partial(refit, penalty=penalty, backwards=mode))
            rows[str(k)][mode] = {"lds_all_by_mask_block": [lds["all"] for lds, _p in quality],
                                  "precision_at_1_single_planted_first_block": quality[0][1]}
        print(k, rows[str(k)]["backwards_case_blocks"], flush=True)
    return {"held_out_cases": len(held), "penalty": penalty, "rows": rows}


def answer_tokens(lm: CausalLM, n_cases: int, seed: int) -> dict[str, int]:
    """Each held-out case's answer length in tokens (the sparse refit's LASSO penalty is per
    answer token), the answer generated as case_outcomes generates it (no scoring pass)."""
    tokens = {}
    for item in training_cases(n_cases, seed, real_split="held_out"):
        case = item.case if item.case.answer is not None else lm.answer(item.case)
        ctx = AuditContext(case, lm, AuditConfig(granularity=item.granularity), Budget())
        tokens[item.case.id] = len(ctx.full.target_ids)
    return tokens


def shipped_refit(d: CaseOutcomes, start: int, k: int, weights: np.ndarray,
                  tokens: dict[str, int], settings: LearnedSettings) -> Correction:
    """The learned method's correction of the estimate by the case's masks start..start+k,
    at `settings` (the method's defaults, or e.g. refit_sparse_from=None for the ridge)."""
    return correct(d.masks[start:start + k], d.targets[start:start + k],
                   d.features.astype(np.float64) @ weights, penalty=settings.refit_penalty,
                   backwards=settings.refit_backwards, alpha=settings.refit_alpha,
                   answer_tokens=tokens[d.case_id], sparse_from=settings.refit_sparse_from,
                   sparse_margin=settings.refit_sparse_margin)


SPARSE_KS = (8, 10, 12, 16)


def sparse(lm: CausalLM, q: dict[str, Any], held_cache: Path) -> dict[str, Any]:
    """The shipped correction (from refit_sparse_from masks, the sparse refit where its
    leave-one-out error is at most refit_sparse_margin x the ridge's) against the ridge refit
    alone, on the quality step's held-out cases, each disjoint block of K train masks (cached
    outcomes; no scoring pass). With it, the share of (case, block) pairs the sparse fit
    took and each fit's leave-one-out LDS over the K masks against the test masks' LDS."""
    weights = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None).vector()
    held = held_out_outcomes(lm, q, held_cache)
    tokens = answer_tokens(lm, q["settings"]["cases"], HELD_OUT_SEED)
    test_from = q["settings"]["train_masks"]
    shipped = LearnedSettings()
    ridge = shipped.model_copy(update={"refit_sparse_from": None})
    rows: dict[str, Any] = {}
    for k in SPARSE_KS:
        rows[str(k)] = {}
        for name, settings in (("ridge", ridge), ("shipped", shipped)):
            blocks = [{d.case_id: shipped_refit(d, b * k, k, weights, tokens, settings)
                       for d in held} for b in range(test_from // k)]
            quality = [held_out_quality(held, lambda d, fits=fits: fits[d.case_id].scores,
                                        test_from) for fits in blocks]
            fits = [f for block in blocks for f in block.values()]
            reported = [f.lds for f in blocks[0].values() if f.lds is not None]
            # the report's leave-one-out LDS beside the same scores' LDS on the test masks
            pairs = [(blocks[0][d.case_id].lds, spearman_lds(
                d.masks[test_from:] @ blocks[0][d.case_id].scores, d.targets[test_from:]))
                for d in held]
            known = [(r, t) for r, t in pairs if r is not None and t is not None]
            rows[str(k)][name] = {
                "lds_all_by_mask_block": [lds["all"] for lds, _p in quality],
                "lds_by_group_first_block": quality[0][0],
                "precision_at_1_single_planted_first_block": quality[0][1],
                "sparse_share": float(np.mean([f.fit == "sparse" for f in fits])),
                "reported_lds_first_block": _mean(list(reported)),
                "reported_minus_test_first_block": _mean([r - t for r, t in known]),
                "reported_abs_error_first_block": _mean([abs(r - t) for r, t in known]),
                "reported_below_min_lds_first_block": sum(
                    r < shipped.min_lds for r, _t in known)}
        print(f"sparse K={k}: sparse share {rows[str(k)]['shipped']['sparse_share']:.2f}",
              file=sys.stderr, flush=True)
    return {"held_out_cases": len(held), "sparse_from": shipped.refit_sparse_from,
            "sparse_margin": shipped.refit_sparse_margin, "alpha": shipped.refit_alpha,
            "rows": rows}


VERIFY_KS = (4, 8)
_SUBSETS = 200


def _verify_subsets(masks: np.ndarray, targets: np.ndarray, scores: np.ndarray
                    ) -> dict[str, dict[str, float]]:
    """What a report's `verify=K` check would have said: the learned estimate's LDS on random
    K-subsets of the held-out masks against its LDS on all of them (mean absolute error), and
    the share of subsets below the default min_lds (0.2), i.e. an `estimate-unreliable`."""
    full = _lds(masks, targets, scores)
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    for k in VERIFY_KS:
        if full is None or k > len(masks):
            continue
        values = [_lds(masks[pick], targets[pick], scores) for pick in
                  (rng.choice(len(masks), k, replace=False) for _ in range(_SUBSETS))]
        kept = np.array([v for v in values if v is not None])
        if len(kept):
            out[str(k)] = {"mean_abs_error": float(np.mean(np.abs(kept - full))),
                           "below_min_lds": float(np.mean(kept < 0.2))}
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _fresh_scores(lm: CausalLM) -> None:
    """An empty score cache, so a timed audit never reuses a variant an earlier one scored
    (the fast and ablation audits share the full answer, the joint removal, ...)."""
    lm.scorer.cache = MemoryScoreCache()


def speed(lm: CausalLM, units: int = 24, ablations: int = 64) -> dict[str, Any]:
    """Side by side in one process, each audit with an empty score cache: the fast preset at
    12 (the default), 4, 0, 8 and 16 verification masks, the 64-mask ablation audit, and the fast
    preset once more after it (the load on a shared machine drifts: the ratio uses the mean
    of the two default fast runs). `scored_tokens` is the token-trie tokens the batched scorer
    ran (the attention pass is not in it): a cost that does not move with the load."""
    item = CaseMaker(HELD_OUT_SEED + 1).planted(0, units)
    case = lm.answer(item.case)
    rendered = lm.renderer(case).render()
    lm.attention_pass(rendered.input_ids, rendered.target_predicting_positions)  # warm-up
    started = time.perf_counter()
    lm.attention_pass(rendered.input_ids, rendered.target_predicting_positions)
    timings: dict[str, Any] = {"one_forward_pass_s": time.perf_counter() - started}
    _fresh_scores(lm)
    started = time.perf_counter()
    lm.score([rendered])
    timings["one_scoring_pass_s"] = time.perf_counter() - started

    def fast(verify: int | None = None) -> AuditConfig:  # None: the method's default
        settings = {} if verify is None else {"learned": {"verify": verify}}
        return AuditConfig.from_dict({"preset": "fast", "method_settings": settings})

    runs = [("fast", fast()), ("fast_verify_4", fast(4)), ("fast_verify_0", fast(0)),
            ("fast_verify_8", fast(8)), ("fast_verify_16", fast(16)),
            (f"ablation_{ablations}", AuditConfig.from_dict({
                "methods": ["attention", "ablation"], "seed": 7,
                "method_settings": {"ablation": {"ablations": ablations}}})),
            ("full_default", AuditConfig.from_dict({
                "seed": 7, "method_settings": {"ablation": {"ablations": ablations}}})),
            ("fast_again", fast())]
    for name, config in runs:
        _fresh_scores(lm)
        started = time.perf_counter()
        report = run_audit(case, lm, config)
        key = "learned" if name.startswith("fast") else "ablation"
        timings[name] = {"seconds": time.perf_counter() - started,
                         "forward_passes": report.cost["forward_passes"],
                         "scored_tokens": report.cost["tokens"],
                         "model_calls": report.cost["model_calls"],
                         "top1": max(report.units,
                                     key=lambda u, k=key: u.reliance.get(k) or -1e9).id,
                         "verdicts": report.verdicts,
                         "verification": report.methods.get("learned", {}).get("verification")}
        print(name, {k: v for k, v in timings[name].items() if k != "verification"}, flush=True)
    base = timings[f"ablation_{ablations}"]
    fast_s = (timings["fast"]["seconds"] + timings["fast_again"]["seconds"]) / 2
    return {"units": units, "tokens": len(rendered.input_ids), "gold": list(item.gold),
            "timings": timings, "speedup_fast": base["seconds"] / fast_s,
            "speedup_fast_verify_4": base["seconds"] / timings["fast_verify_4"]["seconds"],
            "speedup_fast_verify_0": base["seconds"] / timings["fast_verify_0"]["seconds"],
            **{f"speedup_fast_verify_{k}": base["seconds"] / timings[f"fast_verify_{k}"]["seconds"]
               for k in (8, 16)},
            "speedup_fast_vs_full_default": timings["full_default"]["seconds"] / fast_s,
            **{f"speedup_fast_verify_{k}_vs_full_default":
               timings["full_default"]["seconds"] / timings[f"fast_verify_{k}"]["seconds"]
               for k in (8, 16)},
            "full_default_methods": list(AuditConfig().methods),
            "token_ratio_fast": base["scored_tokens"] / timings["fast"]["scored_tokens"]}


def earlier_speed_runs(previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The summaries of the speed runs before this one: the last run's, added to those it
    kept."""
    if previous is None:
        return []
    t = previous["timings"]
    summary = {"run": previous.get("run"), "one_scoring_pass_s": t.get("one_scoring_pass_s"),
               "fast_s": [t["fast"]["seconds"], t["fast_again"]["seconds"]],
               "ablation_64_s": t["ablation_64"]["seconds"],
               "full_default_s": t.get("full_default", {}).get("seconds"),
               "speedup_fast": previous["speedup_fast"],
               "speedup_fast_vs_full_default": previous.get("speedup_fast_vs_full_default")}
    return [*previous.get("earlier", []), summary]


def profile(lm: CausalLM, units: int = 24, verify: int = 0) -> dict[str, Any]:
    """Where a fast audit's seconds go (cProfile, cumulative seconds of the named functions),
    on the speed step's case with an empty score cache, after one untimed audit."""
    item = CaseMaker(HELD_OUT_SEED + 1).planted(0, units)
    case = lm.answer(item.case)
    config = AuditConfig.from_dict({"preset": "fast",
                                    "method_settings": {"learned": {"verify": verify}}})
    run_audit(case, lm, config)  # warm-up
    _fresh_scores(lm)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(run_audit, case, lm, config)
    total = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    wanted = {"attention_pass": ("backend.py", "attention_pass"),
              "shared_scoring_full_and_joint": ("runner.py", "_score_shared"),
              "learned_verification": ("learned.py", "_verify"),
              "linear_layers": ("~", "<built-in method torch._C._nn.linear>"),
              "sdpa": ("~", "<built-in method torch._C._nn.scaled_dot_product_attention>"),
              "answer_rows": ("answer_attention.py", "_weights")}
    found: dict[str, float] = {}
    for (path, _line, func), row in stats.items():
        for name, (suffix, fname) in wanted.items():
            if func == fname and path.endswith(suffix):
                found[name] = found.get(name, 0.0) + row[3]  # cumulative seconds
    return {"verify": verify, "seconds": total,
            "cumulative_seconds": {k: round(v, 2) for k, v in found.items()}}


def _grouped_masks(k: int, group: int, share: float, units: int,
                   rng: np.random.Generator) -> np.ndarray:
    """k keep/drop masks (each unit kept with p 0.5) in groups of `group` that agree on the
    first `share` of the units: masks of a group share that prefix in the token trie."""
    out = []
    for _ in range(k // group):
        head = rng.random(units) < 0.5
        cut = int(share * units)
        for _ in range(group):
            mask = rng.random(units) < 0.5
            mask[:cut] = head[:cut]
            out.append(mask)
    return np.array(out)


def designs(lm: CausalLM, units: int = 24, draws: int = 5) -> dict[str, Any]:
    """Token-trie sizes (no model pass: the renderer and the trie only) of the speed step's
    case: what each verification design would make the batched scorer run, beside the fast
    audit's fixed variants (full answer, joint removal, top-1 removal) and the 64-mask
    ablation's masks. Independent masks are what `learned` draws; grouped masks share the
    first part of their decisions (each unit still kept with p 0.5, but the masks of a group
    only differ in the rest, so the check sees fewer independent comparisons)."""
    item = CaseMaker(HELD_OUT_SEED + 1).planted(0, units)
    case = lm.answer(item.case)
    ctx = AuditContext(case, lm, AuditConfig.from_dict({"preset": "fast"}), Budget())
    fixed = [(Variant(), ANSWER), (ctx.removal(ctx.unit_ids), ANSWER),
             (ctx.removal(list(item.gold)), ANSWER)]

    def tokens(masks: np.ndarray) -> int:
        probes = [(ctx.removal([u for u, keep in zip(ctx.unit_ids, m, strict=True)
                                if not keep]), ANSWER) for m in masks]
        return len(TokenTrie.build([ctx.render(p).input_ids for p in probes]))

    n = len(ctx.unit_ids)
    rows: dict[str, float] = {"prompt_and_answer": len(ctx.full.input_ids),
                              "full_joint": len(TokenTrie.build(
                                  [ctx.render(p).input_ids for p in fixed[:2]])),
                              "fixed_full_joint_top1": len(TokenTrie.build(
                                  [ctx.render(p).input_ids for p in fixed]))}
    for k in (4, 8, 16, 64):
        rows[f"independent_{k}"] = float(np.mean([
            tokens(random_masks(k, n, 0.5, np.random.default_rng(s))) for s in range(draws)]))
    for group, share in ((2, 0.5), (4, 0.5), (4, 0.75)):
        rows[f"grouped_8_by_{group}_sharing_{share}"] = float(np.mean([
            tokens(_grouped_masks(8, group, share, n, np.random.default_rng(s)))
            for s in range(draws)]))
    return {"units": n, "draws": draws, "trie_tokens": rows}


def retrain(lm: CausalLM) -> dict[str, Any]:
    """The shipped weights' recorded command, run as is (a subprocess of the installed CLI)
    with a fresh cache and a temporary --out, so nothing cached or packaged is reused."""
    shipped = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None)
    command = shipped.provenance["command"].split()
    if command[:2] != ["relyscope", "train-attributor"]:
        raise ValueError(f"weights provenance 'command' is not a train-attributor command: "
                         f"{shipped.provenance['command']!r}")
    cli = Path(sys.executable).with_name("relyscope")
    with tempfile.TemporaryDirectory() as fresh:
        out = Path(fresh) / "weights.json"
        started = time.perf_counter()
        subprocess.run([str(cli), *command[1:], "--cache-dir", str(Path(fresh) / "cache"),
                        "--out", str(out)], check=True)
        seconds = time.perf_counter() - started
        result = json.loads(out.read_text(encoding="utf-8"))
    retrained = result["provenance"]
    return {"command": shipped.provenance["command"],
            "shipped_validation_lds": shipped.provenance["validation_lds"],
            "retrained_validation_lds": retrained["validation_lds"],
            "difference": abs(retrained["validation_lds"]
                              - shipped.provenance["validation_lds"]),
            "shipped_weights_sha256": shipped.weights_sha256,
            "retrained_weights_sha256": result["weights_sha256"],
            "identical_weights": result["weights_sha256"] == shipped.weights_sha256,
            "retrained_alpha": retrained["alpha"], "shipped_alpha": shipped.provenance["alpha"],
            "forward_passes": retrained["forward_passes"],
            "scoring_seconds": retrained["scoring_seconds"], "seconds": round(seconds, 1)}


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Learned attributor (AT2's idea) vs attention and ablation", "",
             f"commit `{data['commit']}`, {data['machine']['cpu']}, "
             f"load {data['machine']['loadavg_start']} -> {data.get('loadavg_end')}", ""]
    weights = data.get("weights", {})
    if weights:
        lines += ["## Training (shipped weights)", "",
                  f"{weights.get('cases')} cases x {weights.get('masks_per_case')} masks, "
                  f"{weights.get('forward_passes')} forward passes, "
                  f"{fmt(weights.get('scoring_seconds', 0) / 60, 1)} min scoring; "
                  f"validation LDS {weights.get('validation_lds')} (uniform heads: "
                  f"{weights.get('validation_lds_attention_uniform_heads')}); "
                  f"`{weights.get('command')}`", ""]
    if "quality" in data:
        q = data["quality"]
        s = q["summary"]
        lines += ["## Held-out cases", "", f"run: {q.get('run')}", "",
                  f"{q['settings'].get('cases_run', q['settings']['cases'])} of "
                  f"{q['settings']['cases']} cases ran (seed {q['settings']['seed']}; "
                  f"planted and tool cases first, then real text; time limit "
                  f"{q['settings'].get('max_minutes')} min); LDS on "
                  f"{q['settings']['test_masks']} held-out masks; ablation surrogate fit on "
                  f"{q['settings']['train_masks']} masks.", "",
                  "| group | cases | learned | attention | ablation |", "|---|---|---|---|---|"]
        for name, values in s["mean_lds"].items():
            lines.append(f"| LDS {name} | {s['cases_per_group'][name]} | "
                         f"{fmt(values['learned'])} | {fmt(values['attention'])} | "
                         f"{fmt(values['ablation'])} |")
        p = s["precision_at_1_single_planted"]
        lines += [f"| precision@1 single planted | {s['single_planted_cases']} | "
                  f"{fmt(p['learned'])} | {fmt(p['attention'])} | {fmt(p['ablation'])} |", ""]
        if s.get("precision_at_1_single_planted_value_stated"):
            v = s["precision_at_1_single_planted_value_stated"]
            lines[-1:-1] = [f"| precision@1 single planted, answer states the value | "
                            f"{s['single_planted_value_stated_cases']} | {fmt(v['learned'])} | "
                            f"{fmt(v['attention'])} | {fmt(v['ablation'])} |"]
            missed = [f"{r['case']} ({r['answer']!r})" for r in q["cases"]
                      if r["kind"] == "single" and not r.get("answer_states_value", True)]
            lines += [f"Single planted cases whose answer does not state the planted value: "
                      f"{', '.join(missed) or 'none'}.", ""]
        if s.get("verify_k"):
            lines += ["A report's `verify=K` check, replayed on random K-subsets of each "
                      "case's held-out masks (the learned estimate's LDS):", "",
                      "| K | mean abs error vs all held-out masks | share below min_lds 0.2 |",
                      "|---|---|---|"]
            lines += [f"| {k} | {fmt(v['mean_abs_error'])} | {fmt(v['below_min_lds'])} |"
                      for k, v in s["verify_k"].items()]
            lines.append("")
    if "compare" in data:
        c = data["compare"]
        prov = c["provenance"]
        lines += ["## Other weights on the same held-out cases", "",
                  f"`{prov.get('command')}` ({prov.get('cases')} cases, validation LDS "
                  f"{prov.get('validation_lds')}; sha256 {c['weights_sha256'][:12]}); run: "
                  f"{c.get('run')}", "", "| group | cases | learned | ablation |",
                  "|---|---|---|---|"]
        cs = c["summary"]
        lines += [f"| LDS {name} | {cs['cases_per_group'][name]} | {fmt(v['learned'])} | "
                  f"{fmt(v['ablation'])} |" for name, v in cs["mean_lds"].items()]
        pc = cs["precision_at_1_single_planted"]
        lines += [f"| precision@1 single planted | {cs['single_planted_cases']} | "
                  f"{fmt(pc['learned'])} | {fmt(pc['ablation'])} |", ""]
    if "ceiling" in data:
        c = data["ceiling"]
        lines += ["## Where the gap to ablation lies (held-out cases, no model pass)", "",
                  "LDS on each case's held-out masks of: the shipped weights; ridge weights fit "
                  "on that case's own train masks (the penalty by 4-fold cross-validation over "
                  f"those masks from {c.get('alphas')}; more heads than units, so it can fit "
                  "any unit scores: a per-case surrogate); 1 on the gold units and 0 elsewhere "
                  "(cases with gold). Last column: Spearman, over the units outside the gold, "
                  "of the shipped weights' scores against the 64-mask ablation surrogate's. "
                  f"Run: {c.get('run')}", "",
                  "| group | cases | shipped weights | per-case fit | cases with gold | "
                  "gold indicator | filler agreement |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {name} | {v['cases']} | {fmt(v['shipped'])} | {fmt(v['per_case_fit'])} | "
                  f"{v.get('cases_with_gold', '')} | {fmt(v.get('gold_indicator'))} | "
                  f"{fmt(v.get('filler_agreement'))} |"
                  for name, v in c["mean_lds"].items()]
        lines.append("")
    if "variants" in data:
        v = data["variants"]
        groups = sorted({g for r in v["variants"].values() for g in r["mean_lds"]},
                        key=lambda g: (g != "all", g))
        lines += ["## Other training recipes on the same held-out cases", "",
                  f"{v['held_out_cases']} held-out cases (the quality step's); each recipe fit "
                  "as `relyscope train-attributor` fits (75% training split, ridge penalty by "
                  f"grouped cross-validation over training cases); run: {v.get('run')}", "",
                  "| recipe | training cases | penalty | precision@1 single | "
                  + " | ".join(f"LDS {g}" for g in groups) + " |",
                  "|---|---|---|---|" + "---|" * len(groups)]
        for name, r in v["variants"].items():
            lines.append(f"| {name} | {r['training_cases']} | {r['alpha']} | "
                         f"{fmt(r['precision_at_1_single_planted'])} | "
                         + " | ".join(fmt(r["mean_lds"].get(g)) for g in groups) + " |")
        lines.append("")
    if "calibrate" in data:
        lines += _calibrate_markdown(data["calibrate"])
    if "backwards" in data:
        lines += _backwards_markdown(data["backwards"])
    if "sparse" in data:
        lines += _sparse_markdown(data["sparse"])
    if "confirm" in data:
        lines += _confirm_markdown(data["confirm"])
    if "speed" in data:
        sp = data["speed"]
        t = sp["timings"]
        lines += [f"## Speed ({sp['units']}-unit planted case, {sp.get('tokens')} tokens, one "
                  "process, side by side, an empty score cache per audit)", "",
                  f"run: {sp.get('run')}", "",
                  "| run | seconds | forward passes | scored tokens | top-1 | verification "
                  "LDS |", "|---|---|---|---|---|---|",
                  f"| the attention pass alone | {fmt(t['one_forward_pass_s'], 3)} | 1 | | | |",
                  f"| one scoring pass | {fmt(t.get('one_scoring_pass_s'), 3)} | 1 | "
                  f"{sp.get('tokens')} | | |"]
        for name, v in t.items():
            if isinstance(v, dict):
                check = v.get("verification") or {}
                lines.append(f"| {name} | {fmt(v['seconds'])} | {v['forward_passes']} | "
                             f"{v.get('scored_tokens')} | {v['top1']} | {fmt(check.get('lds'))} |")
        lines += ["", f"fast path speed-up over the 64-mask ablation audit: "
                      f"{fmt(sp['speedup_fast'], 1)}x (mean of the two default fast runs; "
                      f"4 verification masks: {fmt(sp.get('speedup_fast_verify_4'), 1)}x; "
                      f"0 masks, the top-1 removal only: "
                      f"{fmt(sp.get('speedup_fast_verify_0'), 1)}x; 8 / 16 masks: "
                      f"{fmt(sp.get('speedup_fast_verify_8'), 1)}x / "
                      f"{fmt(sp.get('speedup_fast_verify_16'), 1)}x); scored tokens "
                      f"{fmt(sp.get('token_ratio_fast'), 1)}x fewer; gold {sp['gold']}", ""]
        if "speedup_fast_vs_full_default" in sp:
            lines += [f"fast path speed-up over the full default audit (methods "
                      f"{', '.join(sp['full_default_methods'])}, its ablation at 64 masks): "
                      f"{fmt(sp['speedup_fast_vs_full_default'], 1)}x (8 / 16 verification "
                      f"masks: {fmt(sp.get('speedup_fast_verify_8_vs_full_default'), 1)}x / "
                      f"{fmt(sp.get('speedup_fast_verify_16_vs_full_default'), 1)}x)", ""]
        for run in sp.get("earlier", []):
            info = run.get("run") or {}
            lines += [f"Earlier run at commit `{info.get('commit')}` (load "
                      f"{info.get('loadavg_start')} -> {info.get('loadavg_end')}): one scoring "
                      f"pass {fmt(run['one_scoring_pass_s'], 2)} s; fast "
                      f"{' / '.join(fmt(x) for x in run['fast_s'])} s; 64-mask ablation "
                      f"{fmt(run['ablation_64_s'])} s ({fmt(run['speedup_fast'], 1)}x); full "
                      f"default {fmt(run['full_default_s'])} s "
                      f"({fmt(run['speedup_fast_vs_full_default'], 1)}x).", ""]
    if "profile" in data:
        pr = data["profile"]
        lines += [f"## Profile of one fast audit (verify {pr['verify']}, {fmt(pr['seconds'])} s)",
                  "", f"cumulative seconds: {pr['cumulative_seconds']}; run: {pr.get('run')}",
                  ""]
    if "designs" in data:
        de = data["designs"]
        lines += ["## Verification designs: token-trie tokens the batched scorer would run", "",
                  f"the speed step's case ({de['units']} units), mean over {de['draws']} draws "
                  "of masks; no model pass (renderer and trie only); run: "
                  f"{de.get('run')}", "", "| variants | trie tokens |", "|---|---|"]
        lines += [f"| {name} | {fmt(v, 0)} |" for name, v in de["trie_tokens"].items()]
        lines.append("")
    if "retrain" in data:
        r = data["retrain"]
        lines += ["## Retraining from scratch", "",
                  f"shipped validation LDS {fmt(r['shipped_validation_lds'], 3)}, retrained "
                  f"{fmt(r['retrained_validation_lds'], 3)} (difference "
                  f"{fmt(r['difference'], 3)}; target <= 0.03); weights "
                  f"{'identical' if r.get('identical_weights') else 'differ'} "
                  f"(sha256 {str(r.get('retrained_weights_sha256'))[:12]}); "
                  f"{r.get('forward_passes')} passes, {fmt(r.get('seconds', 0) / 60, 1)} min "
                  f"in all; `{r.get('command')}` with a fresh --cache-dir and a temporary "
                  f"--out; run: {r.get('run')}", ""]
    return "\n".join(lines) + "\n"


def _confirm_markdown(c: dict[str, Any]) -> list[str]:
    s = c["summary"]
    groups = sorted(s["mean_lds"], key=lambda g: (g != "all", g))
    refit_all = [b["all"] for b in c["refit_lds_by_mask_block"]]
    first = c["refit_lds_by_mask_block"][0]
    lines = ["## The default on cases no choice saw", "",
             f"{c['settings']['cases_run']} cases of seed {c['seed']} (the quality step's "
             f"recipe; its cases are seed {HELD_OUT_SEED}, where the default {c['verify']} "
             f"verification masks and the penalty {fmt(c['penalty'])} were chosen); LDS on "
             f"{c['settings']['test_masks']} test masks; the refit from the first "
             f"{c['verify']} train masks, and from each disjoint block of them. Run: "
             f"{c.get('run')}", "",
             f"Target (the 64-mask ablation surrogate's LDS minus 0.05): {fmt(c['target'], 3)}. "
             f"Refit to {c['verify']} masks: {_spread(refit_all)}"
             + (f"; the ridge refit alone: "
                f"{_spread([b['all'] for b in c['ridge_lds_by_mask_block']])}"
                if "ridge_lds_by_mask_block" in c else "") + ".", "",
             "| group | cases | learned (0 masks) | learned refit | attention | ablation |",
             "|---|---|---|---|---|---|"]
    for g in groups:
        m = s["mean_lds"][g]
        lines.append(f"| LDS {g} | {s['cases_per_group'][g]} | {fmt(m['learned'], 3)} | "
                     f"{fmt(first.get(g), 3)} | {fmt(m['attention'], 3)} | "
                     f"{fmt(m['ablation'], 3)} |")
    p1 = s["precision_at_1_single_planted"]
    lines.append(f"| precision@1 single planted | {s['single_planted_cases']} | "
                 f"{fmt(p1['learned'])} | {fmt(c['refit_precision_at_1_by_mask_block'][0])} | "
                 f"{fmt(p1['attention'])} | {fmt(p1['ablation'])} |")
    stated = s.get("precision_at_1_single_planted_value_stated")
    if stated:
        lines.append(f"| precision@1 single planted, answer states the value | "
                     f"{s['single_planted_value_stated_cases']} | {fmt(stated['learned'])} | "
                     f"{fmt(c.get('refit_precision_at_1_value_stated'))} | "
                     f"{fmt(stated['attention'])} | {fmt(stated['ablation'])} |")
    missed = [f"{r['case']} ({r['answer'][:80]!r})" for r in c.get("cases", [])
              if r["kind"] == "single" and not r.get("answer_states_value", True)]
    if missed:
        lines += ["", "Single planted cases whose answer does not state the planted value: "
                  + "; ".join(missed) + "."]
    return [*lines, ""]


def _sparse_markdown(r: dict[str, Any]) -> list[str]:
    lines = ["## The sparse refit beside the ridge", "",
             f"{r['held_out_cases']} held-out cases (the quality step's); from each disjoint "
             "block of K train masks, the ridge refit alone and the shipped correction: from "
             f"{r['sparse_from']} masks on, the sparse refit (the ablation's LASSO, "
             f"{fmt(r['alpha'])} per answer token, with the estimate as its prior) wherever its "
             f"leave-one-out error over the K masks is at most {fmt(r['sparse_margin'])} x the "
             "ridge's. LDS (all cases) on the 16 test masks, mean and range over blocks; "
             "sparse share: the (case, block) pairs that took the sparse fit; reported: the "
             "mean leave-one-out LDS a report gives (first block); beside it, that LDS less "
             "the same scores' LDS on the test masks (mean, and mean absolute) and the cases "
             "whose reported LDS is below min_lds, which would flag them estimate-unreliable. "
             f"Run: {r.get('run')}", "",
             "| K | ridge | shipped | range, ridge / shipped | sparse share | precision@1 "
             "single planted, ridge / shipped | reported, ridge / shipped | reported minus "
             "test-mask LDS (mean abs.), ridge / shipped | reported below min_lds, ridge / "
             "shipped |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, row in r["rows"].items():
        ridge, shipped = row["ridge"], row["shipped"]
        a, b = ridge["lds_all_by_mask_block"], shipped["lds_all_by_mask_block"]
        lines.append(
            f"| {k} | {fmt(_mean(a), 3)} | {fmt(_mean(b), 3)} | {fmt(min(a), 3)}-"
            f"{fmt(max(a), 3)} / {fmt(min(b), 3)}-{fmt(max(b), 3)} | "
            f"{fmt(shipped['sparse_share'])} | "
            f"{fmt(ridge['precision_at_1_single_planted_first_block'])} / "
            f"{fmt(shipped['precision_at_1_single_planted_first_block'])} | "
            f"{fmt(ridge['reported_lds_first_block'], 3)} / "
            f"{fmt(shipped['reported_lds_first_block'], 3)} | "
            f"{_signed(ridge)} / {_signed(shipped)} | "
            f"{ridge.get('reported_below_min_lds_first_block')} / "
            f"{shipped.get('reported_below_min_lds_first_block')} |")
    return [*lines, ""]


def _signed(row: dict[str, Any]) -> str:
    return (f"{row['reported_minus_test_first_block']:+.3f} "
            f"({fmt(row['reported_abs_error_first_block'], 3)})"
            if row.get("reported_minus_test_first_block") is not None else "–")


def _spread(values: list[float]) -> str:
    return (f"mean {fmt(_mean(list(values)), 3)}, min {fmt(min(values), 3)}, "
            f"max {fmt(max(values), 3)} "
            f"over {len(values)} blocks")


def _fixed_row(k: int) -> str:
    return f"learned, refit to its {k} verification masks"


def _backwards_markdown(b: dict[str, Any]) -> list[str]:
    lines = ["## When the masks order themselves against the estimate", "",
             f"{b['held_out_cases']} held-out cases (the quality step's); the refit at the "
             f"default penalty {fmt(b['penalty'])} from each disjoint block of K train masks, LDS "
             "(all cases) on the 16 test masks, mean over blocks. Where a block's least-squares "
             "scale of the estimate is 0 or below, the refit shipped before scaled the "
             "estimate to 0 and fit the K masks from nothing; the default now starts the "
             "ridge from the unscaled estimate. "
             f"Run: {b.get('run')}", "",
             "| K | backwards (case, block) pairs | from nothing (before) | from the estimate "
             "(default) | range over blocks, before / default | precision@1 single planted, "
             "first block, before / default |",
             "|---|---|---|---|---|---|"]
    for k, r in b["rows"].items():
        zero, keep = r["zero"]["lds_all_by_mask_block"], r["keep"]["lds_all_by_mask_block"]
        lines.append(f"| {k} | {r['backwards_case_blocks']} of {r['case_blocks']} | "
                     f"{fmt(_mean(zero), 3)} | {fmt(_mean(keep), 3)} | "
                     f"{fmt(min(zero), 3)}-{fmt(max(zero), 3)} / "
                     f"{fmt(min(keep), 3)}-{fmt(max(keep), 3)} | "
                     f"{fmt(r['zero']['precision_at_1_single_planted_first_block'])} / "
                     f"{fmt(r['keep']['precision_at_1_single_planted_first_block'])} |")
    return lines + [""]


def _calibrate_markdown(c: dict[str, Any]) -> list[str]:
    groups = sorted({g for r in c["rows"].values() for g in r["mean_lds"]},
                    key=lambda g: (g != "all", g))
    lines = ["## The estimate refit to its own verification masks", "",
             f"{c['held_out_cases']} held-out cases (the quality step's): the first K of each "
             "case's train masks stand in for a report's K verification masks; LDS on its 16 "
             "test masks. Refit: the learned scores scaled to the K outcomes, then "
             "ridge-corrected toward them, the penalty chosen on "
             f"{c['selection_cases']} training-generator cases the shipped weights were not "
             "fit on. This is no longer zero passes beyond attention: it costs the K masks "
             "the fast path runs anyway. Last columns: what a report (the method's default "
             "penalty) could say of it, the leave-one-out LDS over its K masks: its mean, "
             "its mean distance from the held-out LDS, and the share below the default "
             f"min_lds 0.2 (an `estimate-unreliable`). Run: {c.get('run')}", "",
             "Refit from each disjoint block of K train masks instead (LDS all; the "
             "row's penalty, then the method's default, what a report gets; for the per-case "
             "penalty, its mean LDS on the selection cases, where the fixed penalties were "
             "chosen):", "",
             *(f"- {name}: {_spread(r['lds_all_by_mask_block'])}"
               + (f"; at the default penalty {fmt(r['default_penalty'])}: "
                  f"{_spread(r['lds_all_by_mask_block_at_default_penalty'])}"
                  if "default_penalty" in r else "")
               + (f"; selection cases {fmt(r['selection_lds'])} (the fixed penalty's: "
                  f"{fmt(max(c['rows'][_fixed_row(r['masks'])]['selection_lds_by_penalty'].values()))})"
                  if "selection_lds" in r else "")
               for name, r in c["rows"].items() if r.get("lds_all_by_mask_block")),
             "",
             "| estimate | penalty | precision@1 single | "
             + " | ".join(f"LDS {g}" for g in groups)
             + " | leave-one-out LDS | its error | below 0.2 |",
             "|---|---|---|" + "---|" * len(groups) + "---|---|---|"]
    for name, r in c["rows"].items():
        lines.append(f"| {name} | {fmt(r['penalty'])} | "
                     f"{fmt(r['precision_at_1_single_planted'])} | "
                     + " | ".join(fmt(r["mean_lds"].get(g)) for g in groups)
                     + f" | {fmt(r.get('leave_one_out_mean'))} | "
                     f"{fmt(r.get('leave_one_out_abs_error'))} | "
                     f"{fmt(r.get('leave_one_out_below_min_lds'))} |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="quality,speed")
    parser.add_argument("--cases", type=int, default=50)  # 20 single planted
    parser.add_argument("--train-masks", type=int, default=64)
    parser.add_argument("--test-masks", type=int, default=16)
    parser.add_argument("--weights", help="compare: a weights file to evaluate on the "
                                          "quality step's held-out cases")
    parser.add_argument("--confirm-seed", type=int, default=2002,
                        help="confirm: the seed of its cases (not the quality step's 1001)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="quality: start no case after this many minutes")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir())
                                                   / "relyscope-attributor-bench"))
    parser.add_argument("--train-cache-dir", default=str(relyscope_home() / "attributor-cache"),
                        help="variants: the training outcomes (`relyscope train-attributor "
                             "--cache-dir`'s; default its default)")
    args = parser.parse_args()
    steps = args.steps.split(",")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    out = RESULTS / "attributor.json"
    # steps not run this time keep their earlier results (each with its own commit and load)
    data: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    data.update({"commit": commit, "machine": machine.machine_info()})
    lm = CausalLM.load()
    shipped = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None)
    data["weights"] = shipped.provenance
    data["weights_file"] = str(packaged_path(lm.info.id).name)
    step_info = {"commit": commit, "weights_sha256": shipped.weights_sha256,
                 "loadavg_start": machine.load()}
    if "quality" in steps:
        data["quality"] = quality(lm, args.cases, args.train_masks, args.test_masks,
                                  Path(args.cache_dir), args.max_minutes)
        data["quality"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "answers" in steps:  # after quality (this run's or the saved one)
        data["quality"] = planted_answers(lm, data["quality"])
        data["quality"]["answers_run"] = {**step_info, "loadavg_end": machine.load()}
    if "compare" in steps:  # other weights (--weights) on the quality step's cases
        if not args.weights:
            raise ValueError("--steps compare needs --weights PATH")
        other = weights_for(lm.info.id, lm.num_layers, lm.num_heads, args.weights)
        result = quality(lm, data["quality"]["settings"]["cases"], args.train_masks,
                         args.test_masks, Path(args.cache_dir), weights_path=args.weights)
        data["compare"] = {"weights_sha256": other.weights_sha256,
                           "provenance": other.provenance, "summary": result["summary"],
                           "run": {**step_info, "loadavg_end": machine.load()}}
    if "ceiling" in steps:  # after quality: its cached outcomes
        data["ceiling"] = features_ceiling(lm, data["quality"], Path(args.cache_dir))
        data["ceiling"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "variants" in steps:  # after quality: its cached outcomes
        data["variants"] = variants(lm, data["quality"], Path(args.cache_dir),
                                    Path(args.train_cache_dir))
        data["variants"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "calibrate" in steps:  # after quality: its cached outcomes
        data["calibrate"] = calibrate(lm, data["quality"], Path(args.cache_dir),
                                      Path(args.train_cache_dir))
        data["calibrate"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "backwards" in steps:  # after quality: its cached outcomes
        data["backwards"] = backwards(lm, data["quality"], Path(args.cache_dir))
        data["backwards"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "sparse" in steps:  # after quality: its cached outcomes
        data["sparse"] = sparse(lm, data["quality"], Path(args.cache_dir))
        data["sparse"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "confirm" in steps:
        data["confirm"] = confirm(lm, args.confirm_seed, args.cases, args.train_masks,
                                  args.test_masks, Path(args.cache_dir))
        data["confirm"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "speed" in steps:
        previous = data.get("speed")
        data["speed"] = speed(lm)
        data["speed"]["run"] = {**step_info, "loadavg_end": machine.load()}
        # the machine's speed drifts between runs: each run's ratios are kept beside the last
        data["speed"]["earlier"] = earlier_speed_runs(previous)
    if "profile" in steps:
        data["profile"] = profile(lm)
        data["profile"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "designs" in steps:
        data["designs"] = designs(lm)
        data["designs"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "retrain" in steps:
        data["retrain"] = retrain(lm)
        data["retrain"]["run"] = {**step_info, "loadavg_end": machine.load()}
    data["loadavg_end"] = machine.load()
    # another step may have written the file while this one ran: keep its sections
    latest: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    ran = set(steps) | ({"quality"} if "answers" in steps else set())
    data = {**latest, **data, **{k: latest[k] for k in STEPS if k in latest and k not in ran}}
    write_json(out, data)
    (RESULTS / "attributor.md").write_text(markdown(data), encoding="utf-8")
    print(markdown(data))


if __name__ == "__main__":
    main()
