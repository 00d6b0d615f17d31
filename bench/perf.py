"""Performance benchmark, side by side in one run on one model object.

relyscope's ablation audit (n = 32, 64) vs ContextCite (same n) vs a naive loop: audits per
second, forward passes, top-k log-prob drop and LDS on the same held-out masks scored by
relyscope's scorer. Cost curves of an audit as sources and context length grow; achieved
FLOP/s of the scoring passes against this machine's measured matmul rate; model load time;
passes per second at 300 and 1,000 prompt tokens; what prefix reuse and answer-only logits
save on a 5-source leave-one-out; the scoring changes measured (prefix tree, threads, OpenMP
wait policy, mask dedup). Writes ``perf.json`` and ``perf.md``.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import machine
from bench.cases import FILLERS, CaseFactory
from bench.peers import Attribution, run_contextcite, run_naive
from bench.report import write_json
from relyscope.audits import run_audit
from relyscope.audits.ablation import random_masks, spearman_lds
from relyscope.audits.registry import settings_for
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, ScoringOptions, Variant

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PerfSettings:
    cases: int = 5
    ablations: tuple[int, ...] = (32, 64)
    held_out: int = 32
    source_counts: tuple[int, ...] = (2, 5, 10, 20, 40)
    filler_sentences: tuple[int, ...] = (0, 1, 3, 7)
    curve_config: AuditConfig = field(default_factory=lambda: AuditConfig(
        methods=("attention", "loo", "ablation"), ablations=32))
    load_times: bool = True
    prompt_lengths: tuple[int, ...] = (300, 1000)
    peers: tuple[str, ...] = ("contextcite", "naive")
    omp_probe: bool = True
    matmul_seconds: float = 2.0
    scoring_rounds: int = 2
    # the side by side again with the model object cast to each of these dtypes (where the
    # hardware runs them natively), without the naive loop; quality judged in the run's dtype
    other_dtypes: tuple[str, ...] = ("bfloat16",)


FULL = PerfSettings()
QUICK = PerfSettings(cases=1, ablations=(32,), held_out=16, source_counts=(2, 5),
                     filler_sentences=(0, 1), scoring_rounds=1,
                     curve_config=AuditConfig(methods=("attention", "loo", "ablation"),
                                              ablations=32),
                     load_times=False, prompt_lengths=(300,), other_dtypes=())


# -- cases ----------------------------------------------------------------------------------


def perf_case(index: int, sources: int = 5, extra_sentences: int = 0) -> Case:
    """A planted single fact among fillers, no system message (so ContextCite's prompt is
    token-identical), the fact sentence as the answer."""
    factory = CaseFactory(seed=1000 + index, units=sources)
    base = factory.make("single", index)
    texts = [s.text for s in base.sources]
    if extra_sentences:
        texts = [t + " " + " ".join(FILLERS[(i + j) % len(FILLERS)].format(x=factory.word())
                                    for j in range(extra_sentences))
                 for i, t in enumerate(texts)]
    gold = base.metadata["gold"][0]
    fact = next(s.text for s in base.sources if s.id == gold)
    return Case.from_dict({"id": f"perf-{index}-{sources}-{extra_sentences}",
                           "query": base.query, "answer": fact, "metadata": base.metadata,
                           "sources": [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)]})


def fresh(lm: CausalLM, name: str, options: ScoringOptions | None = None) -> CausalLM:
    """A backend over the same model object with an empty score cache."""
    return CausalLM(lm.model, lm.tokenizer, model_id=name, revision=str(time.monotonic_ns()),
                    options=options or lm.scorer.options)


# -- FLOPs ----------------------------------------------------------------------------------


def param_counts(lm: CausalLM) -> dict[str, int]:
    total = sum(p.numel() for p in lm.model.parameters())
    head = lm.model.get_output_embeddings().weight.numel()
    embed = lm.model.get_input_embeddings().weight.numel()
    tied = lm.model.get_output_embeddings().weight is lm.model.get_input_embeddings().weight
    return {"total": total, "embedding": embed, "lm_head": head,
            "non_embedding": total - embed - (0 if tied else head)}


def flops(params: dict[str, int], tokens: int, logit_positions: int) -> float:
    """2 x non-embedding params per token processed, plus the LM head per kept logit."""
    return 2.0 * params["non_embedding"] * tokens + 2.0 * params["lm_head"] * logit_positions


# -- evaluation with relyscope's scorer -----------------------------------------------------


def evaluate(lm: CausalLM, case: Case, weights: np.ndarray, masks: np.ndarray
             ) -> dict[str, Any]:
    """LDS on held-out masks and top-k drop, both scored by relyscope's scorer."""
    renderer = lm.renderer(case)
    ids = [u.id for u in renderer.units]
    variants = [Variant.without([u for u, k in zip(ids, m, strict=True) if not k])
                for m in masks]
    order = [ids[i] for i in np.argsort(-weights, kind="stable")]
    tops = [Variant.without(order[:k]) for k in (1, 3)]
    scores = lm.score([renderer.render(v) for v in [Variant(), *tops, *variants]])
    full, top1, top3, rest = scores[0], scores[1], scores[2], scores[3:]
    actual = np.array([s.logit_prob for s in rest])
    predicted = masks.astype(float) @ weights
    lds = spearman_lds(predicted, actual)
    return {"lds": lds, "topk_drop": {"1": full.total - top1.total, "3": full.total - top3.total},
            "top1": order[0], "hit": order[0] in case.metadata["gold"]}


# -- side by side ---------------------------------------------------------------------------


def relyscope_ablation(lm: CausalLM, case: Case, config: AuditConfig, options: ScoringOptions
                       ) -> tuple[Attribution, dict[str, Any]]:
    backend = fresh(lm, "relyscope", options)
    started = time.perf_counter()
    report = run_audit(case, backend, config)
    seconds = time.perf_counter() - started
    weights = np.array([report.unit(u.id).reliance["ablation"] for u in report.units])
    answer = report.answer_tokens
    cost = backend.cost
    ablation = settings_for(config, "ablation")
    info = {"distinct_masks": report.methods["ablation"]["distinct_masks"],
            "masks_asked": ablation.ablations + ablation.lds_masks,
            "scoring_seconds": cost.seconds, "cache_hits": cost.cache_hits,
            "model_calls": cost.model_calls, "own_lds": report.faithfulness["ablation"]["lds"]}
    return Attribution(weights, report.methods["ablation"].get("bias", 0.0), seconds,
                       cost.forward_passes, cost.tokens,
                       cost.forward_passes * (answer + 1)), info


def side_by_side(lm: CausalLM, settings: PerfSettings, params: dict[str, int], log, *,
                 peers: tuple[str, ...] | None = None, evaluator_lm: CausalLM | None = None
                 ) -> dict[str, Any]:
    """Each contender on each case at each n; quality scored by `evaluator_lm` (default: `lm`)
    on the same held-out masks, so contenders in different dtypes are judged alike."""
    peers = settings.peers if peers is None else peers
    rows: list[dict[str, Any]] = []
    for index in range(settings.cases):
        case = perf_case(index)
        held_out = random_masks(settings.held_out, len(case.sources), 0.5,
                                np.random.default_rng(10_000 + index))
        evaluator = fresh(evaluator_lm or lm, "evaluator")
        for n in settings.ablations:
            config = AuditConfig(methods=("ablation",), ablations=n)
            runs: dict[str, tuple[Attribution, dict[str, Any]]] = {
                "relyscope": relyscope_ablation(lm, case, config, lm.scorer.options)}
            if "contextcite" in peers:
                runs["contextcite"] = run_contextcite(lm, case, n)
            if "naive" in peers:
                runs["naive"] = (run_naive(lm, case, config), {})
            for name, (att, info) in runs.items():
                quality = evaluate(evaluator, case, att.weights, held_out)
                row = {"case": case.id, "n": n, "contender": name, "seconds": att.seconds,
                       "forward_passes": att.forward_passes, "tokens": att.tokens,
                       "logit_positions": att.logit_positions,
                       "flops": flops(params, att.tokens, att.logit_positions), **quality,
                       "info": info}
                rows.append(row)
                log(f"perf {case.id} n={n} {name}: {att.seconds:.1f}s "
                    f"passes={att.forward_passes} lds={quality['lds']}")
    summary = {}
    for n in settings.ablations:
        per = {}
        for name in ("relyscope", *peers):
            mine = [r for r in rows if r["n"] == n and r["contender"] == name]
            seconds = statistics.fmean(r["seconds"] for r in mine)
            per[name] = {
                "audits_per_second": 1.0 / seconds, "seconds_per_audit": seconds,
                "forward_passes_per_audit": statistics.fmean(r["forward_passes"] for r in mine),
                "tokens_per_audit": statistics.fmean(r["tokens"] for r in mine),
                "topk_drop": {k: statistics.fmean(r["topk_drop"][k] for r in mine)
                              for k in ("1", "3")},
                "lds": _mean([r["lds"] for r in mine]),
                "precision_at_1": statistics.fmean(r["hit"] for r in mine),
                "achieved_gflops": sum(r["flops"] for r in mine)
                / sum(r["seconds"] for r in mine) / 1e9}
        base = per["relyscope"]
        summary[str(n)] = {"contenders": per, "ratios": {
            f"relyscope_vs_{other}": {
                "audits_per_second": base["audits_per_second"] / per[other]["audits_per_second"],
                "forward_passes": base["forward_passes_per_audit"]
                / per[other]["forward_passes_per_audit"],
                "topk_drop_1": _ratio(base["topk_drop"]["1"], per[other]["topk_drop"]["1"]),
                "topk_drop_3": _ratio(base["topk_drop"]["3"], per[other]["topk_drop"]["3"]),
                "lds": _ratio(base["lds"], per[other]["lds"])}
            for other in peers}}
    return {"rows": rows, "summary": summary}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# -- curves, FLOP/s, issue-2 numbers --------------------------------------------------------


def curve(lm: CausalLM, cases: list[Case], config: AuditConfig, params: dict[str, int],
          label: str, log) -> list[dict[str, Any]]:
    points = []
    for case in cases:
        backend = fresh(lm, "curve")
        report = run_audit(case, backend, config)
        prompt = len(backend.renderer(case).render().prompt_ids)
        cost = backend.cost
        points.append({
            "case": case.id, "sources": len(case.sources), "prompt_tokens": prompt,
            "seconds": report.cost["seconds"], "forward_passes": report.cost["forward_passes"],
            "tokens_processed": cost.tokens, "scoring_seconds": cost.seconds,
            "per_method": report.cost["per_method"],
            "scoring_gflops": flops(params, cost.tokens,
                                    cost.forward_passes * (report.answer_tokens + 1))
            / max(cost.seconds, 1e-9) / 1e9})
        log(f"curve {label} {case.id}: {prompt} tokens, {report.cost['seconds']:.1f}s")
    return points


@torch.inference_mode()
def passes_per_second(lm: CausalLM, length: int, repeats: int = 3) -> dict[str, float]:
    """One full-prompt forward pass (logits at the last position only), repeated."""
    ids = torch.randint(100, 40_000, (1, length), generator=torch.Generator().manual_seed(0))
    ids = ids.to(lm.scorer.device)
    lm.model(input_ids=ids, logits_to_keep=1)
    started = time.perf_counter()
    for _ in range(repeats):
        lm.model(input_ids=ids, logits_to_keep=1)
    seconds = (time.perf_counter() - started) / repeats
    return {"prompt_tokens": length, "passes_per_second": 1.0 / seconds,
            "seconds_per_pass": seconds, "tokens_per_second": length / seconds}


SCORING_VARIANTS = {
    "naive": ScoringOptions(layout="batch", reuse_prefix=False, target_only_logits=False,
                            max_batch_size=1, prefix_tree=False),
    "prefix_reuse_only": ScoringOptions(layout="batch", target_only_logits=False,
                                        prefix_tree=False),
    "answer_logits_only": ScoringOptions(layout="batch", reuse_prefix=False),
    "both": ScoringOptions(layout="batch", prefix_tree=False),
    "both_and_prefix_tree": ScoringOptions(layout="batch"),
    "token_trie": ScoringOptions(),
}


def loo_savings(lm: CausalLM, case: Case, rounds: int) -> dict[str, Any]:
    """A 5-source leave-one-out (full + 5 removals) scored under each option set."""
    renderer = lm.renderer(case)
    ids = [u.id for u in renderer.units]
    rendered = [renderer.render()] + [renderer.render(Variant.without([u])) for u in ids]
    out: dict[str, Any] = {}
    for _ in range(rounds):  # interleaved rounds; the best of each is kept
        for name, options in SCORING_VARIANTS.items():
            backend = fresh(lm, name, options)
            backend.scorer.cache = None
            started = time.perf_counter()
            backend.score(rendered)
            seconds = time.perf_counter() - started
            best = out.get(name)
            if best is None or seconds < best["seconds"]:
                out[name] = {"seconds": seconds, "forward_passes": backend.cost.forward_passes,
                             "model_calls": backend.cost.model_calls,
                             "tokens": backend.cost.tokens}
    naive = out["naive"]
    for entry in out.values():
        entry["speedup_vs_naive"] = naive["seconds"] / entry["seconds"]
        entry["tokens_ratio_vs_naive"] = entry["tokens"] / naive["tokens"]
        entry["passes_ratio_vs_naive"] = entry["forward_passes"] / naive["forward_passes"]
    return out


def scoring_changes(lm: CausalLM, case: Case, rounds: int, log) -> dict[str, Any]:
    """The measured effect of this branch's scoring changes on one n=64 ablation audit."""
    config = AuditConfig(methods=("ablation",), ablations=64)
    variants = {"flat_prefix": ScoringOptions(layout="batch", prefix_tree=False),
                "prefix_tree": ScoringOptions(layout="batch"),
                "token_trie": ScoringOptions(),
                "token_trie_1_thread": ScoringOptions(threads=1),
                "token_trie_2_threads": ScoringOptions(threads=2)}
    out: dict[str, Any] = {}
    for _ in range(rounds):
        for name, options in variants.items():
            att, info = relyscope_ablation(lm, case, config, options)
            best = out.get(name)
            if best is None or att.seconds < best["seconds"]:
                out[name] = {"seconds": att.seconds, "tokens": att.tokens,
                             "forward_passes": att.forward_passes,
                             "model_calls": info["model_calls"],
                             "distinct_masks": info["distinct_masks"],
                             "masks_asked": info["masks_asked"]}
            log(f"scoring {name}: {att.seconds:.1f}s tokens={att.tokens}")
    return out


_OMP_PROBE = """
import time, torch
from relyscope.models import CausalLM
lm = CausalLM.load()
ids = torch.randint(100, 40000, (4, 130), generator=torch.Generator().manual_seed(0))
out = {}
with torch.inference_mode():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        lm.model(input_ids=ids, logits_to_keep=1)
        started = time.perf_counter()
        for _ in range(3):
            lm.model(input_ids=ids, logits_to_keep=1)
        out[threads] = (time.perf_counter() - started) / 3
print(out[1], out[2])
"""


def omp_wait_policy_probe() -> dict[str, Any]:
    """Seconds for a 4 x 130-token pass at 1 and 2 threads under each OpenMP wait policy."""
    out = {}
    for policy in ("ACTIVE", "PASSIVE"):
        env = {**os.environ, "OMP_WAIT_POLICY": policy, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", _OMP_PROBE], env=env, capture_output=True,
                              text=True, timeout=600, check=True)
        one, two = (float(x) for x in done.stdout.split()[-2:])
        out[policy] = {"seconds_1_thread": one, "seconds_2_threads": two,
                       "two_over_one": two / one, "loadavg": machine.load()}
    return out


_LOAD = ("import time; from relyscope.models import CausalLM; t = time.perf_counter(); "
         "CausalLM.load(); print(time.perf_counter() - t)")


def load_times() -> dict[str, Any]:
    """CausalLM.load() seconds: first run with an empty RELYSCOPE_HOME (GGUF dequantised and
    cached as safetensors), then the cached load, each in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="relyscope-home-") as home:
        env = {**os.environ, "RELYSCOPE_HOME": home, "PYTHONPATH": str(ROOT)}
        times = []
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True,
                                  text=True, timeout=900, check=True)
            times.append(float(done.stdout.split()[-1]))
    return {"gguf_first_run_seconds": times[0], "cached_seconds": times[1],
            "first_over_cached": times[0] / times[1]}


# -- run ------------------------------------------------------------------------------------


def run(settings: PerfSettings, out_dir: Path, *, mode: str, log=print,
        lm: CausalLM | None = None, device: str = "cpu", dtype: str = "float32"
        ) -> dict[str, Any]:
    """The whole benchmark; `lm` defaults to the packaged model on `device` in `dtype`."""
    started = time.monotonic()
    info = machine.machine_info()
    result: dict[str, Any] = {"benchmark": "perf", "mode": mode, "machine": info,
                              "settings": {k: v for k, v in settings.__dict__.items()
                                           if k != "curve_config"},
                              "curve_config": settings.curve_config.model_dump(mode="json")}
    if settings.load_times:
        result["load_time"] = load_times()
        log(f"load times {result['load_time']}")
    lm = lm or CausalLM.load(device=device, dtype=dtype)
    device, torch_dtype = str(lm.scorer.device), next(lm.model.parameters()).dtype
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(lm.scorer.device)
    params = param_counts(lm)
    result["model"] = {**lm.info.__dict__, "params": params}

    def measure_matmul() -> float:
        return machine.matmul_gflops(seconds=settings.matmul_seconds, dtype=torch_dtype,
                                     device=device)

    result["matmul_gflops_before"] = measure_matmul()
    result["side_by_side"] = side_by_side(lm, settings, params, log)
    result["other_dtypes"] = other_dtypes(lm, settings, params, log)
    result["passes_per_second"] = [passes_per_second(lm, n) for n in settings.prompt_lengths]
    result["loo_savings_5_sources"] = loo_savings(lm, perf_case(0), settings.scoring_rounds)
    result["scoring_changes"] = scoring_changes(lm, perf_case(0), settings.scoring_rounds, log)
    write_json(out_dir / "perf.partial.json", result)  # kept if a later stage fails
    result["curves"] = {
        "sources": curve(lm, [perf_case(0, sources=k) for k in settings.source_counts],
                         settings.curve_config, params, "sources", log),
        "context_length": curve(lm, [perf_case(0, extra_sentences=k)
                                     for k in settings.filler_sentences],
                                settings.curve_config, params, "length", log)}
    result["matmul_gflops_after"] = measure_matmul()
    if settings.omp_probe and device == "cpu":
        result["omp_wait_policy"] = omp_wait_policy_probe()
    matmul = (result["matmul_gflops_before"] + result["matmul_gflops_after"]) / 2
    result["matmul_gflops"] = matmul
    result["flops_share"] = flops_share(result, matmul)
    result["loadavg_end"] = machine.load()
    result["seconds"] = time.monotonic() - started
    write_json(out_dir / "perf.json", result)
    (out_dir / "perf.partial.json").unlink(missing_ok=True)
    (out_dir / "perf.md").write_text(markdown(result), encoding="utf-8")
    return result


def other_dtypes(lm: CausalLM, settings: PerfSettings, params: dict[str, int], log
                 ) -> dict[str, Any]:
    """relyscope vs its peers on one model object cast to each other dtype; quality is
    judged by the run's own model, so a faster dtype cannot hide a worse attribution."""
    out: dict[str, Any] = {}
    for name in settings.other_dtypes:
        dtype = getattr(torch, name)
        if dtype == next(lm.model.parameters()).dtype:
            continue
        if lm.scorer.device.type == "cpu" and dtype == torch.bfloat16 \
                and not machine.native_bf16():
            out[name] = {"skipped": "this CPU has no native bfloat16 matmul"}
            continue
        cast = CausalLM(copy.deepcopy(lm.model).to(dtype), lm.tokenizer, model_id=lm.info.id,
                        revision=lm.info.revision, options=lm.scorer.options)
        peers = tuple(p for p in settings.peers if p != "naive")  # the loop adds nothing here
        block = side_by_side(cast, settings, params, log, peers=peers, evaluator_lm=lm)
        block["matmul_gflops"] = machine.matmul_gflops(
            seconds=settings.matmul_seconds, dtype=dtype, device=str(lm.scorer.device))
        out[name] = block
        del cast
    return out


def flops_share(result: dict[str, Any], matmul: float) -> dict[str, Any]:
    out = {}
    for n, block in result["side_by_side"]["summary"].items():
        for name, entry in block["contenders"].items():
            out[f"{name}_n{n}"] = entry["achieved_gflops"] / matmul
    for label, points in result["curves"].items():
        mean = statistics.fmean(p["scoring_gflops"] for p in points)
        out[f"curve_{label}_scoring"] = mean / matmul
    return out


# -- the 40-source point, flat vs screened (issue 14) --------------------------------------

# the settings that cut the 40-source point (all user settings of AuditConfig): leave-one-out
# only the top 3 units of the ablation surrogate (loo screen_top, on ablation's own masks, no
# extra passes), and 16 sparse masks (keep_prob 0.3: shorter variants) in one scoring call.
# Tried first and recorded: the adaptive count (auto from 12 masks, 2 a round) ran to its cap
# of 32 here, and its rounds, scored call by call, share fewer prefixes than one trie.
SCREENED = AuditConfig(methods=("attention", "loo", "ablation"), method_settings={
    "loo": {"screen_top": 3}, "ablation": {"ablations": 16, "keep_prob": 0.3}})
SCREENED_AUTO = AuditConfig(methods=("attention", "loo", "ablation"), method_settings={
    "loo": {"screen_top": 3},
    "ablation": {"ablations": "auto", "auto_start": 12, "auto_step": 2, "auto_cap": 32}})


def curve_point(lm: CausalLM, sources: int, configs: dict[str, AuditConfig], log
                ) -> dict[str, Any]:
    """One point of the sources curve under each config: passes, tokens, seconds and each
    method's top-k drops (the audit's own faithfulness checks), in one run."""
    case = perf_case(0, sources=sources)
    out: dict[str, Any] = {"case": case.id, "sources": sources, "gold": case.metadata["gold"],
                           "configs": {k: c.model_dump(mode="json") for k, c in configs.items()},
                           "runs": {}}
    for name, config in configs.items():
        backend = fresh(lm, f"point-{name}")
        report = run_audit(case, backend, config)
        out["runs"][name] = {
            "prompt_tokens": len(backend.renderer(case).render().prompt_ids),
            "seconds": report.cost["seconds"], "forward_passes": report.cost["forward_passes"],
            "tokens_processed": backend.cost.tokens, "per_method": report.cost["per_method"],
            "topk_drop": {m: f["topk_drop"] for m, f in report.faithfulness.items()},
            "top3": {m: report.ranking(m)[:3] for m in report.faithfulness},
            "ablation": {k: report.methods["ablation"].get(k)
                         for k in ("masks_used", "stopped", "masks_fit", "lds")},
            "loo_screen": report.methods["loo"].get("screen")}
        log(f"point {sources} {name}: {report.cost['forward_passes']} passes, "
            f"{backend.cost.tokens} tokens, {report.cost['seconds']:.1f} s")
    return out


def point_main(argv: list[str] | None = None) -> int:
    """`python -m bench.perf --point 40`: the point flat (today's curve config) and screened,
    merged into perf.json (key `point_<n>`) with the commit and load; perf.md re-rendered."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.perf")
    parser.add_argument("--point", type=int, required=True, help="number of sources")
    parser.add_argument("--only", nargs="+", choices=["flat", "screened-auto", "screened"],
                        help="run only these; the others' earlier rows are kept")
    args = parser.parse_args(argv)
    configs = {"flat": FULL.curve_config, "screened-auto": SCREENED_AUTO, "screened": SCREENED}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    load_start = machine.load()
    lm = CausalLM.load()
    block = curve_point(lm, args.point, {k: c for k, c in configs.items()
                                         if not args.only or k in args.only},
                        lambda msg: print(msg, file=sys.stderr, flush=True))
    for run in block["runs"].values():
        run.update(commit=commit, loadavg_start=load_start, loadavg_end=machine.load())
    path = ROOT / "bench" / "results" / "perf.json"
    result = json.loads(path.read_text(encoding="utf-8"))
    earlier = result.get(f"point_{args.point}", {"runs": {}, "configs": {}})
    block["runs"] = {**earlier["runs"], **block["runs"]}
    block["configs"] = {**earlier["configs"], **block["configs"]}
    block.update(commit=commit, loadavg_start=load_start, loadavg_end=machine.load())
    result[f"point_{args.point}"] = block
    write_json(path, result)
    (path.parent / "perf.md").write_text(markdown(result), encoding="utf-8")
    print(json.dumps(block["runs"], indent=1))
    return 0


def markdown(result: dict[str, Any]) -> str:
    from bench.perf_md import render

    return render(result)


if __name__ == "__main__":  # pragma: no cover
    if "--point" in sys.argv:
        sys.exit(point_main())
    print(json.dumps(run(QUICK, Path("bench/results"), mode="quick"), indent=1)[:2000])
