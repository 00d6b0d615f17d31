"""The learned attributor against attention and ablation, on cases never used in training.

Steps (python -m bench.attributor [--steps quality,speed,retrain]):
- quality: held-out cases (planted single and redundant facts, real text of the held-out
  questions with source and sentence units, tool traces; a seed training never used). Each
  case: one attention pass and `--train-masks` + `--test-masks` random masks scored once
  (cached on disk, so a rerun resumes). LDS on the test masks of: the learned estimate, raw
  attention (uniform weights over heads; the provenance method's ranking) and the ablation
  surrogate fit on the train masks (ContextCite's LASSO, the `ablation` method's). Precision@1
  on single-source planted cases for the three.
- speed: a 24-unit planted case, side by side in one process: the fast preset (attention +
  learned + 8 verification masks) vs attention + the 64-mask ablation audit, and one forward
  pass of the same case.
- retrain: `relyscope train-attributor`'s training from scratch (a fresh cache) with the
  shipped weights' recorded settings; its validation LDS beside the shipped one (target: within
  0.03).
Writes bench/results/attributor.json and .md with the commit, the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.report import fmt, write_json
from relyscope.audits import run_audit
from relyscope.audits.ablation import fit_surrogate, spearman_lds
from relyscope.audits.attributor_cases import CaseMaker, training_cases
from relyscope.audits.attributor_training import CaseOutcomes, case_outcomes, train
from relyscope.audits.attributor_weights import packaged_path, weights_for
from relyscope.config import AuditConfig
from relyscope.models import CausalLM

RESULTS = Path(__file__).parent / "results"
HELD_OUT_SEED = 1001  # training uses seed 0 and the even-numbered demo questions


def _lds(masks: np.ndarray, targets: np.ndarray, scores: np.ndarray) -> float | None:
    return spearman_lds(masks.astype(np.float64) @ scores, targets)


def quality(lm: CausalLM, n_cases: int, train_masks: int, test_masks: int,
            cache: Path) -> dict[str, Any]:
    weights = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None).vector()
    rows = []
    for item in training_cases(n_cases, HELD_OUT_SEED, real_split="held_out"):
        started = time.perf_counter()
        d: CaseOutcomes = case_outcomes(item, lm, masks=train_masks + test_masks,
                                        keep_prob=0.5, seed=HELD_OUT_SEED, cache_dir=cache)
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
            "top1": {k: d.unit_ids[int(np.argmax(v))] for k, v in scores.items()}}
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
    return {"settings": {"cases": n_cases, "seed": HELD_OUT_SEED, "train_masks": train_masks,
                         "test_masks": test_masks, "ablation_alpha": 0.01},
            "summary": summary, "cases": rows}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def speed(lm: CausalLM, units: int = 24, verify: int = 8, ablations: int = 64) -> dict[str, Any]:
    item = CaseMaker(HELD_OUT_SEED + 1).planted(0, units)
    case = lm.answer(item.case)
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    rendered = lm.renderer(case).render()
    lm.attention_pass(rendered.input_ids)  # warm-up, not timed
    started = time.perf_counter()
    lm.attention_pass(rendered.input_ids)
    timings["one_forward_pass_s"] = time.perf_counter() - started
    configs = {
        "fast": AuditConfig.from_dict({"preset": "fast",
                                       "method_settings": {"learned": {"verify": verify}}}),
        "fast_no_verify": AuditConfig.from_dict({
            "preset": "fast", "method_settings": {"learned": {"verify": 0}}}),
        f"ablation_{ablations}": AuditConfig.from_dict({
            "methods": ["attention", "ablation"], "seed": 7,
            "method_settings": {"ablation": {"ablations": ablations}}}),
    }
    for name, config in configs.items():
        started = time.perf_counter()
        report = run_audit(case, lm, config)
        timings[name] = {"seconds": time.perf_counter() - started,
                         "forward_passes": report.cost["forward_passes"],
                         "top1": max(report.units, key=lambda u: u.reliance.get(
                             "learned" if name.startswith("fast") else "ablation") or -1e9).id,
                         "verdicts": report.verdicts,
                         "verification": report.methods.get("learned", {}).get("verification")}
    base = timings[f"ablation_{ablations}"]["seconds"]
    return {"units": units, "gold": list(item.gold), "timings": timings,
            "speedup_fast": base / timings["fast"]["seconds"],
            "speedup_fast_no_verify": base / timings["fast_no_verify"]["seconds"]}


def retrain(lm: CausalLM) -> dict[str, Any]:
    shipped = weights_for(lm.info.id, lm.num_layers, lm.num_heads, None).provenance
    with tempfile.TemporaryDirectory() as fresh:
        result = train(lm, training_cases(shipped["cases"], shipped["seed"]),
                       masks=shipped["masks_per_case"], keep_prob=shipped["keep_prob"],
                       seed=shipped["seed"],
                       val_fraction=shipped["validation_cases"] / shipped["cases"],
                       cache_dir=Path(fresh))
    return {"shipped_validation_lds": shipped["validation_lds"],
            "retrained_validation_lds": result.validation_lds,
            "difference": abs(result.validation_lds - shipped["validation_lds"]),
            "seconds": result.seconds}


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
                  f"{q['settings']['cases']} cases (seed {q['settings']['seed']}); LDS on "
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
    if "speed" in data:
        sp = data["speed"]
        t = sp["timings"]
        lines += ["## Speed (24-unit planted case, one process, side by side)", "",
                  f"run: {sp.get('run')}", "",
                  "| run | seconds | forward passes | top-1 |", "|---|---|---|---|",
                  f"| one forward pass | {fmt(t['one_forward_pass_s'], 3)} | 1 | |"]
        for name, v in t.items():
            if isinstance(v, dict):
                lines.append(f"| {name} | {fmt(v['seconds'])} | {v['forward_passes']} | "
                             f"{v['top1']} |")
        lines += ["", f"fast path speed-up over the 64-mask ablation audit: "
                      f"{fmt(sp['speedup_fast'], 1)}x (without verification: "
                      f"{fmt(sp['speedup_fast_no_verify'], 1)}x); gold {sp['gold']}", ""]
    if "retrain" in data:
        r = data["retrain"]
        lines += ["## Retraining from scratch", "",
                  f"shipped validation LDS {fmt(r['shipped_validation_lds'], 3)}, retrained "
                  f"{fmt(r['retrained_validation_lds'], 3)} (difference "
                  f"{fmt(r['difference'], 3)}; target <= 0.03)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="quality,speed")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--train-masks", type=int, default=64)
    parser.add_argument("--test-masks", type=int, default=16)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir())
                                                   / "relyscope-attributor-bench"))
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
                                  Path(args.cache_dir))
        data["quality"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "speed" in steps:
        data["speed"] = speed(lm)
        data["speed"]["run"] = {**step_info, "loadavg_end": machine.load()}
    if "retrain" in steps:
        data["retrain"] = retrain(lm)
        data["retrain"]["run"] = {**step_info, "loadavg_end": machine.load()}
    data["loadavg_end"] = machine.load()
    write_json(out, data)
    (RESULTS / "attributor.md").write_text(markdown(data), encoding="utf-8")
    print(markdown(data))


if __name__ == "__main__":
    main()
