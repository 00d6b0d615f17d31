"""Audits at the size of real RAG answers, side by side with ContextCite in one run.

The case: four passages of Python's reference documentation (bench/realtext.py, planted facts
included) with every sentence a unit of its own (each sentence becomes a source, so relyscope
and ContextCite get the same units and token-identical prompts), at least 24 units and 1,000
prompt tokens. Contenders, on the same model object: relyscope's ablation audit with
`ablations="auto"` (rounds of masks until the cross-validated LDS and the top-3 set settle),
and with a fixed 64; ContextCite at its default of 64 ablations (batch 8, as in the issue's
measurement). Quality: LDS on the same held-out masks scored by the same plain scorer (a fresh
backend on the same model), and the top-1/top-3 log-prob drop. Writes bench/results/scale.json
and scale.md with the commit, the machine and its load.
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
# moves by at most 0.03 and the top-3 units stay the same, capped at ContextCite's 64
AUTO = {"ablations": "auto", "auto_start": 16, "auto_step": 2, "auto_cap": 64}


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


def relyscope_run(lm: CausalLM, case: Case, settings: dict[str, Any]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    backend = fresh(lm, "relyscope")
    started = time.perf_counter()
    report = run_audit(case, backend, AuditConfig(methods=("ablation",),
                                                  method_settings={"ablation": settings}))
    seconds = time.perf_counter() - started
    weights = np.array([report.unit(u.id).reliance["ablation"] for u in report.units])
    extras = report.methods["ablation"]
    return weights, {"seconds": seconds, "forward_passes": backend.cost.forward_passes,
                     "tokens": backend.cost.tokens, "masks": extras.get("masks_used",
                                                                         extras["masks_fit"]),
                     "stopped": extras.get("stopped"), "own_lds": extras.get("lds")}


def run(cases: int, held_out: int, fixed: bool, log=print) -> dict[str, Any]:
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
        if fixed:
            runs["relyscope 64"] = relyscope_run(lm, case, {"ablations": 64})
        attribution, check = run_contextcite(lm, case, 64, batch_size=8)
        runs["ContextCite 64"] = (attribution.weights, {
            "seconds": attribution.seconds, "forward_passes": attribution.forward_passes,
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
                     "forward_passes": float(np.mean([r["forward_passes"] for r in mine])),
                     "tokens": float(np.mean([r["tokens"] for r in mine])),
                     "lds": float(np.mean([r["lds"] for r in mine if r["lds"] is not None])),
                     "top1_drop": float(np.mean([r["topk_drop"]["1"] for r in mine])),
                     "top3_drop": float(np.mean([r["topk_drop"]["3"] for r in mine]))}
    base = out["ContextCite 64"]
    for name in names:
        out[name]["audits_per_second_vs_contextcite"] = (base["seconds_per_audit"]
                                                         / out[name]["seconds_per_audit"])
        out[name]["lds_minus_contextcite"] = out[name]["lds"] - base["lds"]
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Side by side at 24+ sentence units and 1,000+ prompt tokens (issue 14)", "",
             f"Commit `{result['commit']}`; {m['cpu']}, {m['cores']} cores, load "
             f"{m['loadavg_start']} at start and {m.get('loadavg_end')} at the end (a shared "
             "machine: compare the ratios, measured in one run).", "",
             "Settings: " + "; ".join(f"{name}: `{json.dumps(v)}`"
                                      for name, v in result["settings"].items()) + ".",
             "Token-identical prompts and answers with ContextCite: "
             + ", ".join(f"{r['case']} {r['same_prompt_tokens'] and r['same_answer_tokens']}"
                         for r in result["rows"] if "same_prompt_tokens" in r) + ".", "",
             "| contender | s/audit | passes | tokens | LDS (same held-out masks) | "
             "top-1 drop | top-3 drop | audits/s vs ContextCite | LDS - ContextCite's |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {s['seconds_per_audit']:.1f} | {s['forward_passes']:.0f} | "
                     f"{s['tokens']:.0f} | {s['lds']:.3f} | {s['top1_drop']:.2f} | "
                     f"{s['top3_drop']:.2f} | {s['audits_per_second_vs_contextcite']:.2f}x | "
                     f"{s['lds_minus_contextcite']:+.3f} |")
    lines += ["", "| case | units | prompt tokens | contender | masks | stopped | s | LDS |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['case']} | {r['units']} | {r['prompt_tokens']} | {r['contender']} | "
                     f"{r['masks']} | {r.get('stopped') or '—'} | {r['seconds']:.1f} | "
                     f"{r['lds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--cases", type=int, default=1)
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--fixed", action="store_true",
                        help="also run relyscope at a fixed 64 masks (exact scoring's floor)")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    info = machine.machine_info()
    result = {"commit": commit, "machine": info,
              "settings": {"relyscope auto": {"ablation": AUTO},
                           "ContextCite 64": {"num_ablations": 64, "batch_size": 8}},
              **run(args.cases, args.held_out, args.fixed,
                    log=lambda msg: print(msg, file=sys.stderr, flush=True))}
    info["loadavg_end"] = machine.load()
    write_json(RESULTS / "scale.json", result)
    (RESULTS / "scale.md").write_text(markdown(result), encoding="utf-8")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
