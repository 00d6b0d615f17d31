"""Audits at the size of real RAG answers, side by side with ContextCite in one run.

The case: four passages of Python's reference documentation (bench/realtext.py, planted facts
included) with every sentence a unit of its own (each sentence becomes a source, so relyscope
and ContextCite get the same units and token-identical prompts), at least 24 units and 1,000
prompt tokens. Contenders, on the same model object: relyscope's ablation audit with
`ablations="auto"` (rounds of masks until the cross-validated LDS and the top-3 set settle),
optionally at fixed mask counts; the fast preset (one attention pass, the learned attributor's
estimate refit to its 12 verification masks: an estimate, not a measurement); ContextCite at
its default of 64 ablations (batch 8, as in the issue's measurement). Quality: LDS on the same
held-out masks scored by the same plain scorer (a fresh backend on the same model), and the
top-1/top-3 log-prob drop. Writes bench/results/scale.json and scale.md with the commit, the
machine and its load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench import machine  # noqa: E402
from bench.peers import run_contextcite  # noqa: E402
from bench.perf import evaluate, fresh  # noqa: E402
from bench.realtext import candidates  # noqa: E402
from bench.report import write_json  # noqa: E402
from relyscope.audits import run_audit  # noqa: E402
from relyscope.audits.ablation import random_masks  # noqa: E402
from relyscope.case import Case, split_sentences  # noqa: E402
from relyscope.config import AuditConfig  # noqa: E402
from relyscope.models import CausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# relyscope's settings (AuditConfig.method_settings["ablation"], all user settings): the
# adaptive mask count, starting at 16 masks and adding 2 a round until the cross-validated LDS
# reaches 0.9 (good enough) or moves by at most 0.03 with the top-3 units unchanged (settled),
# capped at ContextCite's 64. The first run (kept under `earlier`) had no LDS target.
FAST = "relyscope fast (estimate)"
AUTO = {"ablations": "auto", "auto_start": 16, "auto_step": 2, "auto_cap": 64,
        "auto_lds_target": 0.9}


def sentence_case(index: int, passages: int = 4) -> Case:
    """A real-text case with each sentence of its passages as a source of its own."""
    data = candidates(index + 1, 0, seed=140 + index, per_case=passages)[index]
    planted = {p["sentence"] for p in data["metadata"]["planted"]}
    sources, gold = [], []
    for source in data["sources"]:
        for i, (text, _start) in enumerate(split_sentences(source["text"])):
            sid = f"{source['id']}#{i}"
            sources.append({"id": sid, "text": text.strip()})
            if text.strip() in planted:
                gold.append(sid)
    # no system message: ContextCite's prompt is one user turn, so relyscope's must be too
    return Case.from_dict({**data, "id": f"scale-{index}", "sources": sources, "claims": None,
                           "system": None, "metadata": {**data["metadata"], "gold": gold}})


def chunk_case(index: int, chunks: int = 10, keep: int = 4) -> Case:
    """A real-text case of `chunks` passages (the sources), each cut to a window of `keep`
    sentences (around its planted sentence where it has one), for hierarchical vs flat."""
    data = candidates(index + 1, 0, seed=240 + index, per_case=chunks)[index]
    planted = {p["sentence"] for p in data["metadata"]["planted"]}
    sources, gold = [], []
    for source in data["sources"]:
        pieces = [text.strip() for text, _start in split_sentences(source["text"])]
        at = next((i for i, t in enumerate(pieces) if t in planted), 0)
        first = max(0, min(at - keep // 2, len(pieces) - keep))
        window = pieces[first:first + keep]
        sources.append({"id": source["id"], "text": " ".join(window)})
        gold += [f"{source['id']}#{i}" for i, t in enumerate(window) if t in planted]
    return Case.from_dict({**data, "id": f"chunks-{index}", "sources": sources, "claims": None,
                           "metadata": {**data["metadata"], "gold": gold}})


def hierarchy_vs_flat(lm: CausalLM, cases: int, expand_drop: float, log=print
                      ) -> dict[str, Any]:
    """Flat sentence-level leave-one-out against the hierarchical one (sources first, then
    the sentences of sources whose drop reaches `expand_drop`), on the same model object."""
    rows = []
    for index in range(cases):
        case = chunk_case(index)
        flat_lm, tree_lm = fresh(lm, "flat"), fresh(lm, "tree")
        started = time.perf_counter()
        flat = run_audit(case, flat_lm, AuditConfig(methods=("loo",), granularity="sentence"))
        flat_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = run_audit(case, tree_lm, AuditConfig(
            methods=("loo",), method_settings={"loo": {"expand_drop": expand_drop}}))
        tree_seconds = time.perf_counter() - started
        tree = report.methods["loo"]["hierarchy"]
        flat_top, tree_top = flat.ranking("loo")[:3], tree["sentence_ranking"][:3]
        rows.append({
            "case": case.id, "chunks": len(case.sources),
            "sentences": len(flat.units),
            "prompt_tokens": len(lm.renderer(case).render().prompt_ids),
            "gold": case.metadata["gold"], "expanded": tree["expanded"],
            "flat_top3": flat_top, "hierarchical_top3": tree_top,
            "top3_overlap": len(set(flat_top) & set(tree_top)) / 3,
            "top1_agrees": bool(tree_top) and tree_top[0] == flat_top[0],
            "gold_in_flat_top": sorted(set(case.metadata["gold"]) & set(flat_top)),
            "gold_in_hierarchical_top": sorted(set(case.metadata["gold"]) & set(tree_top)),
            "flat": {"forward_passes": flat.cost["forward_passes"],
                     "tokens": flat_lm.cost.tokens, "seconds": flat_seconds},
            "hierarchical": {"forward_passes": report.cost["forward_passes"],
                             "tokens": tree_lm.cost.tokens, "seconds": tree_seconds},
            "passes_fraction": report.cost["forward_passes"] / flat.cost["forward_passes"],
            "tokens_fraction": tree_lm.cost.tokens / flat_lm.cost.tokens})
        r = rows[-1]
        log(f"{case.id}: {r['chunks']} chunks, {r['sentences']} sentences, expanded "
            f"{r['expanded']}, top-3 overlap {r['top3_overlap']:.2f}, passes "
            f"{r['hierarchical']['forward_passes']}/{r['flat']['forward_passes']}")
    return {"expand_drop": expand_drop, "rows": rows,
            "mean_top3_overlap": float(np.mean([r["top3_overlap"] for r in rows])),
            "top1_agrees": sum(r["top1_agrees"] for r in rows),
            "mean_passes_fraction": float(np.mean([r["passes_fraction"] for r in rows])),
            "mean_tokens_fraction": float(np.mean([r["tokens_fraction"] for r in rows]))}


def relyscope_run(lm: CausalLM, case: Case, settings: dict[str, Any]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    backend = fresh(lm, "relyscope")
    started, cpu = time.perf_counter(), time.process_time()
    report = run_audit(case, backend, AuditConfig(methods=("ablation",),
                                                  method_settings={"ablation": settings}))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    weights = np.array([report.unit(u.id).reliance["ablation"] for u in report.units])
    extras = report.methods["ablation"]
    return weights, {"seconds": seconds, "cpu_seconds": cpu,
                     "forward_passes": backend.cost.forward_passes,
                     "tokens": backend.cost.tokens, "masks": extras.get("masks_used",
                                                                         extras["masks_fit"]),
                     "stopped": extras.get("stopped"), "own_lds": extras.get("lds")}


def fast_run(lm: CausalLM, case: Case) -> tuple[np.ndarray, dict[str, Any]]:
    """The fast preset (attention pass, the learned estimate, its default verification
    masks); the unit weights are the scores the report gives (refit to those masks). The
    backend keeps the model's id: the packaged weights are found by it."""
    backend = fresh(lm, lm.info.id)
    started, cpu = time.perf_counter(), time.process_time()
    report = run_audit(case, backend, AuditConfig.from_dict({"preset": "fast"}))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if "learned" in report.errors:
        raise RuntimeError(f"the fast preset's estimate failed: {report.errors['learned']}")
    weights = np.array([report.unit(u.id).reliance["learned"] for u in report.units])
    check = report.methods["learned"]["verification"]
    return weights, {"seconds": seconds, "cpu_seconds": cpu,
                     "forward_passes": report.cost["forward_passes"],
                     "tokens": backend.cost.tokens, "masks": check["masks"], "stopped": None,
                     "own_lds": check["lds"], "verdicts": report.verdicts}


def run(cases: int, held_out: int, fixed: list[int], log=print) -> dict[str, Any]:
    lm = CausalLM.load()
    rows: list[dict[str, Any]] = []
    for index in range(cases):
        case = sentence_case(index)
        rendered = lm.renderer(case).render()
        units = len(case.sources)
        log(f"{case.id}: {units} units, {len(rendered.prompt_ids)} prompt tokens")
        masks = random_masks(held_out, units, 0.5, np.random.default_rng(10_000 + index))
        evaluator = fresh(lm, "evaluator")
        runs: dict[str, tuple[np.ndarray, dict[str, Any]]] = {
            "relyscope auto": relyscope_run(lm, case, AUTO)}
        for n in fixed:
            runs[f"relyscope {n}"] = relyscope_run(lm, case, {"ablations": n})
        runs[FAST] = fast_run(lm, case)
        cpu = time.process_time()  # includes its prompt set-up, a few ms
        attribution, check = run_contextcite(lm, case, 64, batch_size=8)
        cpu = time.process_time() - cpu
        runs["ContextCite 64"] = (attribution.weights, {
            "seconds": attribution.seconds, "cpu_seconds": cpu,
            "forward_passes": attribution.forward_passes,
            "tokens": attribution.tokens, "masks": 64, **check})
        for name, (weights, info) in runs.items():
            quality = evaluate(evaluator, case, weights, masks)
            rows.append({"case": case.id, "units": units,
                         "prompt_tokens": len(rendered.prompt_ids), "contender": name,
                         **info, **quality})
            log(f"  {name}: {info['seconds']:.1f} s, {info['forward_passes']} passes, "
                f"LDS {quality['lds']}")
    return {"rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(dict.fromkeys(r["contender"] for r in rows))
    out: dict[str, Any] = {}
    for name in names:
        mine = [r for r in rows if r["contender"] == name]
        out[name] = {"seconds_per_audit": float(np.mean([r["seconds"] for r in mine])),
                     "cpu_seconds_per_audit": float(np.mean([r.get("cpu_seconds", np.nan)
                                                             for r in mine])),
                     "forward_passes": float(np.mean([r["forward_passes"] for r in mine])),
                     "tokens": float(np.mean([r["tokens"] for r in mine])),
                     "lds": float(np.mean([r["lds"] for r in mine if r["lds"] is not None])),
                     "top1_drop": float(np.mean([r["topk_drop"]["1"] for r in mine])),
                     "top3_drop": float(np.mean([r["topk_drop"]["3"] for r in mine]))}
    base = out["ContextCite 64"]
    for name in names:
        out[name]["audits_per_second_vs_contextcite"] = (base["seconds_per_audit"]
                                                         / out[name]["seconds_per_audit"])
        out[name]["cpu_ratio_vs_contextcite"] = (base["cpu_seconds_per_audit"]
                                                 / out[name]["cpu_seconds_per_audit"])
        out[name]["lds_minus_contextcite"] = out[name]["lds"] - base["lds"]
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Audits at real scale (issue 14)", ""]
    if "summary" in result:
        lines += _side_by_side_md(result)
    if "hierarchy" in result:
        lines += _hierarchy_md(result["hierarchy"])
    return "\n".join(lines) + "\n"


def _side_by_side_md(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    lines = ["## Side by side with ContextCite at 24+ sentence units and 1,000+ prompt tokens",
             "",
             f"Commit `{result['commit']}`; {m['cpu']}, {m['cores']} cores, load "
             f"{m['loadavg_start']} at start and {m.get('loadavg_end')} at the end (a shared "
             "machine: compare the ratios, measured in one run).", "",
             "Settings: " + "; ".join(f"{name}: `{json.dumps(v)}`"
                                      for name, v in result["settings"].items()) + ".",
             "Token-identical prompts and answers with ContextCite: "
             + ", ".join(f"{r['case']} {r['same_prompt_tokens'] and r['same_answer_tokens']}"
                         for r in result["rows"] if "same_prompt_tokens" in r) + ".", "",
             "| contender | s/audit | CPU s/audit | passes | tokens | LDS (same held-out "
             "masks) | top-1 drop | top-3 drop | audits/s vs ContextCite | CPU time ratio | "
             "LDS - ContextCite's |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {s['seconds_per_audit']:.1f} | "
                     f"{s.get('cpu_seconds_per_audit', float('nan')):.1f} | "
                     f"{s['forward_passes']:.0f} | "
                     f"{s['tokens']:.0f} | {s['lds']:.3f} | {s['top1_drop']:.2f} | "
                     f"{s['top3_drop']:.2f} | {s['audits_per_second_vs_contextcite']:.2f}x | "
                     f"{s.get('cpu_ratio_vs_contextcite', float('nan')):.2f}x | "
                     f"{s['lds_minus_contextcite']:+.3f} |")
    for run in result.get("earlier", []):
        lines += ["", f"Earlier run at commit `{run['commit']}` (load "
                  f"{run['machine']['loadavg_start']} to {run['machine'].get('loadavg_end')}), "
                  f"settings `{json.dumps(run.get('settings'))}`: " + "; ".join(
                      f"{name} {s['seconds_per_audit']:.0f} s, {s['forward_passes']:.0f} "
                      f"passes, LDS {s['lds']:.3f}, "
                      f"{s['audits_per_second_vs_contextcite']:.2f}x"
                      for name, s in run["summary"].items()) + "."]
    lines += ["", "| case | units | prompt tokens | contender | masks | stopped | s | LDS |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['case']} | {r['units']} | {r['prompt_tokens']} | {r['contender']} | "
                     f"{r['masks']} | {r.get('stopped') or '—'} | {r['seconds']:.1f} | "
                     f"{r['lds']} |")
    return lines + [""]


def _hierarchy_md(block: dict[str, Any]) -> list[str]:
    m = block["machine"]
    lines = ["## Hierarchical vs flat sentence-level leave-one-out on 10-chunk contexts", "",
             f"Commit `{block['commit']}`; load {m['loadavg_start']} at start and "
             f"{m.get('loadavg_end')} at the end. Hierarchical: loo `expand_drop` "
             f"{block['expand_drop']} nats at source granularity; flat: "
             "`--granularity sentence`. Agreement: the share of the flat run's top-3 sentences "
             "among the hierarchical run's top-3 expanded sentences.", "",
             f"Mean top-3 agreement {block['mean_top3_overlap']:.2f}; top-1 agrees in "
             f"{block['top1_agrees']} of {len(block['rows'])}; passes "
             f"{block['mean_passes_fraction']:.2f} and tokens "
             f"{block['mean_tokens_fraction']:.2f} of the flat run's.", "",
             "| case | chunks | sentences | prompt tokens | expanded | flat top-3 | "
             "hierarchical top-3 | agreement | passes (hier / flat) | tokens (hier / flat) | "
             "s (hier / flat) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in block["rows"]:
        h, f = r["hierarchical"], r["flat"]
        lines.append(f"| {r['case']} | {r['chunks']} | {r['sentences']} | "
                     f"{r['prompt_tokens']} | {', '.join(r['expanded'])} | "
                     f"{', '.join(r['flat_top3'])} | {', '.join(r['hierarchical_top3'])} | "
                     f"{r['top3_overlap']:.2f} | {h['forward_passes']} / {f['forward_passes']} | "
                     f"{h['tokens']} / {f['tokens']} | {h['seconds']:.0f} / {f['seconds']:.0f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--cases", type=int, default=1)
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--hierarchy", type=int, metavar="CASES",
                        help="only hierarchical vs flat on this many 10-chunk cases, merged "
                             "into scale.json (key hierarchy)")
    parser.add_argument("--expand-drop", type=float, default=2.0)
    parser.add_argument("--fixed", type=int, nargs="*", default=[], metavar="N",
                        help="also run relyscope at these fixed mask counts (64: exact "
                             "scoring's floor)")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    info = machine.machine_info()
    if args.hierarchy:
        lm = CausalLM.load()
        block = {"commit": commit, "machine": info,
                 **hierarchy_vs_flat(lm, args.hierarchy, args.expand_drop,
                                     log=lambda msg: print(msg, file=sys.stderr, flush=True))}
        info["loadavg_end"] = machine.load()
        path = RESULTS / "scale.json"
        result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        result["hierarchy"] = block
        write_json(path, result)
        (RESULTS / "scale.md").write_text(markdown(result), encoding="utf-8")
        return 0
    result = {"commit": commit, "machine": info,
              "settings": {"relyscope auto": {"ablation": AUTO},
                           **{f"relyscope {n}": {"ablation": {"ablations": n}}
                              for n in args.fixed},
                           FAST: {"preset": "fast"},
                           "ContextCite 64": {"num_ablations": 64, "batch_size": 8}},
              **run(args.cases, args.held_out, args.fixed,
                    log=lambda msg: print(msg, file=sys.stderr, flush=True))}
    info["loadavg_end"] = machine.load()
    path = RESULTS / "scale.json"
    if path.exists():  # keep the hierarchy part and the summaries of earlier runs
        earlier = json.loads(path.read_text(encoding="utf-8"))
        if "hierarchy" in earlier:
            result["hierarchy"] = earlier["hierarchy"]
        result["earlier"] = earlier.get("earlier", []) + (
            [{k: earlier.get(k) for k in ("commit", "machine", "settings", "summary")}]
            if "summary" in earlier else [])
    write_json(path, result)
    (RESULTS / "scale.md").write_text(markdown(result), encoding="utf-8")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
