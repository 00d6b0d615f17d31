"""The fast path's estimate at real scale: ways to correct it with its verification masks.

The fast preset refits the learned estimate to its K verification masks (estimate_refit: the
estimate scaled, then a ridge correction toward the masks' outcomes). Its penalty and K were
chosen on generated cases of 4-24 units. This bench asks how that refit does on real text at
the side by side's scale (bench/scale.py's cases: four passages of Python's reference
documentation, every sentence a unit, 40 units and 1,000+ prompt tokens, two planted
sentences), beside other uses of the same K masks, all scored on the same held-out masks:

- the zero-pass estimate;
- the ridge refit (toward the estimate, penalty 3; where the masks order themselves against
  the estimate, the ridge starts from it unscaled), and the ridge refit shipped before that,
  which scaled such an estimate to 0 and fit the masks from nothing;
- the sparse refit: the ablation method's LASSO with the estimate as its prior (a unit's
  penalty grows as its share of the estimate's largest shrinks);
- the shipped correction (estimate_refit.correct with the method's defaults): from 10 masks,
  the sparse refit where its leave-one-out error over the K masks is at most half the
  ridge's, else the ridge;
- the ablation method's LASSO surrogate on the same K masks alone (no estimate);
- a sparse correction: the estimate scaled as the refit scales it, then the ablation method's
  LASSO fit to what it leaves unexplained;
- per case, the ridge refit or the LASSO surrogate, whichever has the lower leave-one-out
  error over the K masks.

No variant costs a pass beyond the K masks. Each case's pass outcomes are cached (resumable);
`python -m bench.fast_refit [--cases N]` writes bench/results/fast_refit.{json,md}.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench import machine  # noqa: E402
from bench.report import fmt, write_json  # noqa: E402
from bench.scale import sentence_case  # noqa: E402
from relyscope.audits.ablation import fit_surrogate, random_masks, spearman_lds  # noqa: E402
from relyscope.audits.attributor_features import row_features, unit_features  # noqa: E402
from relyscope.audits.attributor_weights import weights_for  # noqa: E402
from relyscope.audits.base import AuditContext, Budget  # noqa: E402
from relyscope.audits.estimate_refit import (  # noqa: E402
    Correction,
    Fit,
    correct,
    estimate_scale,
    predict_left_out,
    refit,
    sparse_refit,
)
from relyscope.audits.learned import LearnedAttributor, LearnedSettings  # noqa: E402
from relyscope.config import AuditConfig  # noqa: E402
from relyscope.models import CausalLM, Variant  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VERIFY = (8, 10, 12, 16)  # the first K of the method's own 16 verification draws
HELD_OUT = 32
HELD_OUT_SEED = 20_000
SETTINGS = LearnedSettings()
ALPHA = SETTINGS.refit_alpha  # the ablation method's LASSO penalty per answer token
PENALTY = SETTINGS.refit_penalty


def case_outcomes(lm: CausalLM, index: int, cache: Path) -> dict[str, Any]:
    """One case's zero-pass estimate, verification and held-out masks and their outcomes
    (the answer's logit-scaled probability), from the cache when it has them."""
    case = sentence_case(index)
    file = cache / f"{case.id}.json"
    if file.is_file():
        return json.loads(file.read_text(encoding="utf-8"))
    started = time.perf_counter()
    config = AuditConfig.from_dict({"preset": "fast",
                                    "method_settings": {"learned": {"verify": max(VERIFY)}}})
    ctx = AuditContext(case, lm, config, Budget())
    weights = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None)
    rows = row_features(ctx.answer_attention().rows, ctx.full, ctx.unit_ids)
    estimate = unit_features(rows) @ weights.vector()
    method = LearnedAttributor()
    verify = method._masks(ctx, method.settings(ctx))
    held = random_masks(HELD_OUT, len(ctx.unit_ids), 0.5, np.random.default_rng(
        HELD_OUT_SEED + index))
    renderer = lm.renderer(case)
    variants = [Variant.without([u for u, keep in zip(ctx.unit_ids, m, strict=True) if not keep])
                for m in [*verify, *held]]
    outcomes = [s.logit_prob for s in lm.score([renderer.render(v) for v in variants])]
    data = {"case": case.id, "units": ctx.unit_ids, "gold": case.metadata["gold"],
            "prompt_tokens": len(ctx.full.prompt_ids),
            "answer_tokens": len(ctx.full.target_ids), "estimate": estimate.tolist(),
            "verify_masks": verify.astype(int).tolist(),
            "verify_outcomes": outcomes[:len(verify)],
            "held_masks": held.astype(int).tolist(), "held_outcomes": outcomes[len(verify):],
            "seconds": time.perf_counter() - started}
    cache.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(data), encoding="utf-8")
    return data


def _lasso(masks: np.ndarray, outcomes: np.ndarray, answer_tokens: int) -> np.ndarray:
    return fit_surrogate(masks, outcomes, ALPHA, answer_tokens)[0]


def sparse_correction(masks: np.ndarray, outcomes: np.ndarray, estimate: np.ndarray,
                      answer_tokens: int) -> np.ndarray:
    """The estimate scaled to the outcomes (never below 0), plus the LASSO fit of what that
    leaves unexplained."""
    start = max(0.0, estimate_scale(masks, outcomes, estimate)) * estimate
    return start + _lasso(masks, outcomes - masks @ start, answer_tokens)


def _loo_error(masks: np.ndarray, outcomes: np.ndarray, fit: Fit) -> float:
    """Mean squared error of each mask's outcome predicted by `fit` on the other masks."""
    return float(np.mean(np.square(predict_left_out(masks, outcomes, fit) - outcomes)))


def shipped_correction(d: dict[str, Any], k: int) -> Correction:
    """The method's own correction of the case's estimate by its first k verification masks."""
    return correct(np.asarray(d["verify_masks"][:k], dtype=np.float64),
                   np.asarray(d["verify_outcomes"][:k]), np.asarray(d["estimate"]),
                   penalty=PENALTY, backwards=SETTINGS.refit_backwards, alpha=ALPHA,
                   answer_tokens=d["answer_tokens"], sparse_from=SETTINGS.refit_sparse_from,
                   sparse_margin=SETTINGS.refit_sparse_margin)


def variants(d: dict[str, Any], k: int) -> dict[str, np.ndarray]:
    """Each variant's unit scores from the case's first k verification masks."""
    masks = np.asarray(d["verify_masks"][:k], dtype=np.float64)
    outcomes = np.asarray(d["verify_outcomes"][:k])
    estimate = np.asarray(d["estimate"])
    tokens = d["answer_tokens"]
    ridge = refit(masks, outcomes, estimate, PENALTY)  # the method's default ("keep")
    lasso = _lasso(masks, outcomes, tokens)
    ridge_error = _loo_error(masks, outcomes, lambda m, o: refit(m, o, estimate, PENALTY))
    lasso_error = _loo_error(masks, outcomes, lambda m, o: _lasso(m, o, tokens))
    shipped = shipped_correction(d, k)
    return {"zero-pass estimate": estimate, "ridge refit": ridge,
            "ridge refit scaling a backwards estimate to 0 (shipped earlier)":
                refit(masks, outcomes, estimate, PENALTY, backwards="zero"),
            "sparse refit (LASSO, the estimate its prior)":
                sparse_refit(masks, outcomes, estimate, ALPHA, tokens),
            "shipped: sparse refit where it predicts left-out masks clearly better, else ridge":
                shipped.scores,
            "LASSO on the masks alone": lasso,
            "sparse correction": sparse_correction(masks, outcomes, estimate, tokens),
            "ridge refit or LASSO by leave-one-out error":
                ridge if ridge_error <= lasso_error else lasso}


def evaluate(cases: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    backwards: dict[str, list[str]] = {}
    sparse: dict[str, list[str]] = {}
    errors: dict[str, dict[str, dict[str, float | None]]] = {}
    for k in VERIFY:
        shipped = {d["case"]: shipped_correction(d, k) for d in cases}
        sparse[str(k)] = [case for case, c in shipped.items() if c.fit == "sparse"]
        errors[str(k)] = {case: {"ridge": c.ridge_error, "sparse": c.sparse_error}
                          for case, c in shipped.items()}
        backwards[str(k)] = [d["case"] for d in cases
                             if estimate_scale(np.asarray(d["verify_masks"][:k]),
                                               np.asarray(d["verify_outcomes"][:k]),
                                               np.asarray(d["estimate"])) <= 0]
        per: dict[str, list[tuple[float | None, bool, bool]]] = {}
        for d in cases:
            held = np.asarray(d["held_masks"], dtype=np.float64)
            actual = np.asarray(d["held_outcomes"])
            for name, scores in variants(d, k).items():
                ranked = [d["units"][i] for i in np.argsort(-scores, kind="stable")]
                hit = ranked[0] in d["gold"]
                top_gold = set(ranked[:len(d["gold"])]) == set(d["gold"])
                per.setdefault(name, []).append((spearman_lds(held @ scores, actual), hit,
                                                 top_gold))
        table[str(k)] = {name: {
            "lds": float(np.mean([x for x, _, _ in rows if x is not None])),
            "lds_min": float(np.min([x for x, _, _ in rows if x is not None])),
            "top1_in_gold": float(np.mean([h for _, h, _ in rows])),
            "gold_ranked_first": float(np.mean([g for _, _, g in rows])),
            "lds_by_case": {d["case"]: x for d, (x, _, _) in zip(cases, rows, strict=True)}}
            for name, rows in per.items()}
    return {"by_k": table, "backwards_cases": backwards, "sparse_cases": sparse,
            "left_out_errors": errors}


def _range(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{fmt(min(known), 1)}-{fmt(max(known), 1)}" if known else "not tried"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    cases = result["cases"]
    lines = ["# The fast path's estimate at real scale: corrections from its verification masks",
             "", f"Commit `{result['commit']}`; {m['cpu']}, load {m['loadavg_start']} -> "
             f"{m.get('loadavg_end')}; `python -m bench.fast_refit --cases {len(cases)}`.", "",
             f"{len(cases)} real-text cases (bench/scale.py's: every sentence of four passages "
             f"a unit; {min(c['units'] for c in cases)}-{max(c['units'] for c in cases)} units, "
             f"{min(c['prompt_tokens'] for c in cases)}-{max(c['prompt_tokens'] for c in cases)}"
             " prompt tokens; two planted sentences each, the gold). The first K of the fast "
             f"path's own verification draws; LDS on {HELD_OUT} held-out masks per case (mean, "
             "and the lowest case); top-1 in gold: the share of cases whose top unit is a "
             "planted sentence; gold ranked first: the share whose top units are the planted "
             "sentences. Pass outcomes come from the per-case cache where it has them "
             "(a rerun after a change to the corrections alone scores nothing again; the "
             "seconds below are the run that scored each case).", "",
             "| K | variant | LDS | lowest case | top-1 in gold | gold ranked first |",
             "|---|---|---|---|---|---|"]
    for k, rows in result["table"]["by_k"].items():
        for name, r in rows.items():
            lines.append(f"| {k} | {name} | {fmt(r['lds'], 3)} | {fmt(r['lds_min'], 3)} | "
                         f"{fmt(r['top1_in_gold'])} | {fmt(r['gold_ranked_first'])} |")
    lines += ["", "Cases whose K masks order themselves against the estimate (a least-squares "
              "scale of 0 or below, the only cases where the two refits differ): " + ", ".join(
                  f"K = {k}: {len(ids)}" + (f" ({', '.join(ids)})" if ids else "")
                  for k, ids in result["table"]["backwards_cases"].items()) + ". Cases where the "
              "shipped correction took the sparse refit: " + ", ".join(
                  f"K = {k}: {len(ids)} of {len(cases)}"
                  for k, ids in result["table"]["sparse_cases"].items()) + ". Per-case LDS "
              "of every variant: fast_refit.json (`table.by_k.K.variant.lds_by_case`).", "",
              "The shipped correction's choice: each fit's leave-one-out mean squared error "
              "over the K masks (logit-probability units squared), range over the cases: "
              + "; ".join(f"K = {k}: ridge {_range([e['ridge'] for e in by.values()])}, "
                          f"sparse {_range([e['sparse'] for e in by.values()])}"
                          for k, by in result["table"]["left_out_errors"].items()) + ".",
              "", "| case | units | prompt tokens | seconds (pass outcomes) |",
              "|---|---|---|---|"]
    lines += [f"| {c['case']} | {c['units']} | {c['prompt_tokens']} | {fmt(c['seconds'], 0)} |"
              for c in cases]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_refit", description=__doc__)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir())
                                                   / "relyscope-fast-refit"))
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    info = machine.machine_info()
    lm = CausalLM.load()
    cases = []
    for index in range(args.cases):
        cases.append(case_outcomes(lm, index, Path(args.cache_dir)))
        print(f"{cases[-1]['case']}: {len(cases[-1]['units'])} units, "
              f"{cases[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    info["loadavg_end"] = machine.load()
    result = {"commit": commit, "machine": info, "table": evaluate(cases),
              "cases": [{"case": c["case"], "units": len(c["units"]),
                         "prompt_tokens": c["prompt_tokens"], "seconds": c["seconds"]}
                        for c in cases]}
    write_json(RESULTS / "fast_refit.json", result)
    (RESULTS / "fast_refit.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
