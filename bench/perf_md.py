"""The Markdown view of perf.json."""

from __future__ import annotations

from typing import Any

from bench.report import fmt as _f
from relyscope.audits.registry import settings_for
from relyscope.config import AuditConfig


def _side_by_side(block: dict[str, Any], share: Any) -> list[str]:
    lines = [
        "| n | contender | audits/s | s/audit | passes/audit | tokens/audit | top-1 drop | "
        "top-3 drop | LDS | P@1 | GFLOP/s | share of matmul |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, per_n in block["summary"].items():
        for name, e in per_n["contenders"].items():
            lines.append(
                f"| {n} | {name} | {_f(e['audits_per_second'], 3)} | "
                f"{_f(e['seconds_per_audit'], 1)} | {_f(e['forward_passes_per_audit'], 1)} | "
                f"{_f(e['tokens_per_audit'], 0)} | {_f(e['topk_drop']['1'], 1)} | "
                f"{_f(e['topk_drop']['3'], 1)} | {_f(e['lds'])} | {_f(e['precision_at_1'])} | "
                f"{_f(e['achieved_gflops'], 1)} | {_f(share(name, n, e))} |")
    lines += ["", "Ratios (relyscope / other):", "",
              "| n | vs | audits/s | passes | top-1 drop | top-3 drop | LDS |",
              "|---|---|---|---|---|---|---|"]
    for n, per_n in block["summary"].items():
        for name, q in per_n["ratios"].items():
            lines.append(f"| {n} | {name.removeprefix('relyscope_vs_')} | "
                         f"{_f(q['audits_per_second'])}x | {_f(q['forward_passes'])} | "
                         f"{_f(q['topk_drop_1'])} | {_f(q['topk_drop_3'])} | {_f(q['lds'])} |")
    return lines


def _point(block: dict[str, Any]) -> list[str]:
    """One point of the sources curve, flat vs screened, measured in one run."""
    runs = block["runs"]
    lines = ["", f"### The {block['sources']}-source point: flat vs screened (issue 14)", "",
             f"Case {block['case']} (planted fact in {', '.join(block['gold'])}); each row "
             "names its commit and the load average around it (a shared machine: seconds "
             "move with the load, passes and tokens do not). Settings:", ""]
    for name, config in block["configs"].items():
        lines.append(f"- {name}: methods {', '.join(config['methods'])}; method settings "
                     f"`{config['method_settings']}`")
    lines += ["", "| run | commit | load | passes | tokens processed | seconds | ablation masks "
              "(stopped) | ablation LDS (own) | LOO units removed | top-3 drop loo / ablation / "
              "attention |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in runs.items():
        drops = " / ".join(_f(e["topk_drop"].get(m, {}).get("3"), 1)
                           for m in ("loo", "ablation", "attention"))
        screen = e.get("loo_screen")
        removed = screen["top"] if screen else block["sources"]
        ablation = e["ablation"]
        masks = ablation.get("masks_used") or ablation.get("masks_fit")
        lines.append(f"| {name} | `{e.get('commit', block.get('commit', ''))[:7]}` | "
                     f"{e.get('loadavg_start')} | {e['forward_passes']} | "
                     f"{e['tokens_processed']} | {_f(e['seconds'], 1)} | "
                     f"{masks} ({ablation.get('stopped') or 'fixed'}) | "
                     f"{_f(ablation.get('lds'))} | {removed} | {drops} |")
    flat = runs.get("flat")
    for name, e in runs.items():
        if flat and name != "flat":
            lines += ["", f"{name} / flat: tokens "
                      f"{_f(e['tokens_processed'] / flat['tokens_processed'])}, passes "
                      f"{_f(e['forward_passes'] / flat['forward_passes'])}."]
    return lines


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    dtype = r["model"]["dtype"]
    where = m.get("gpu") or (f"{m['cpu']}, {m['cores']} cores "
                             f"({', '.join(m['cpu_flags'][:6])}...)")
    cases = r["settings"]["cases"]
    lines = [
        f"# Performance benchmark ({r['mode']})", "",
        f"{where}, model on {r['model']['device']} in {dtype}, torch {m['torch']}, "
        f"{m['torch_threads']} threads; load average {m['loadavg_start']} at start, "
        f"{r['loadavg_end']} at end (the machine is shared: compare ratios). Measured {dtype} "
        f"matmul: {_f(r['matmul_gflops'], 1)} GFLOP/s.", "",
        "## relyscope ablation vs ContextCite vs a naive loop (same model object, same cases)",
        "",
        f"Means over {cases} planted-fact cases of 5 sources. Each contender's attribution is "
        f"judged on the same {r['settings']['held_out']} held-out masks by one scorer (LDS) "
        "and by removing its top-k sources (log-prob drop, nats). relyscope's time is a whole "
        "audit: the full answer, the joint removal, the masks, the surrogate, its own "
        "cross-validated LDS and its top-k faithfulness check.", ""]
    lines += _side_by_side(r["side_by_side"],
                           lambda name, n, e: r["flops_share"][f"{name}_n{n}"])
    for name, block in r.get("other_dtypes", {}).items():
        lines += ["", f"## The same side by side with the model object in {name}", ""]
        if "skipped" in block:
            lines.append(f"Skipped: {block['skipped']}.")
            continue
        rate = block["matmul_gflops"]
        lines += [f"Both contenders run the {name} model; quality is judged by the {dtype} "
                  f"model as above. Measured {name} matmul: {_f(rate, 1)} GFLOP/s.", ""]
        lines += _side_by_side(block, lambda _name, _n, e, rate=rate: e["achieved_gflops"]
                               / rate)
    # saved results hold the config as dumped: flat settings before issue 13, per method after
    ablation = settings_for(AuditConfig.model_validate(r["curve_config"]), "ablation")
    lines += ["", "## Cost of an audit as it grows", "",
              f"Methods {', '.join(r['curve_config']['methods'])}, "
              f"{ablation.ablations} ablations "
              f"({ablation.lds_masks or 'cross-validated LDS, no'} held-out masks), "
              "faithfulness checks included (tracing's cost per unit is in quality.md).", "",
              "| curve | sources | prompt tokens | passes | tokens processed | seconds | "
              "scoring GFLOP/s |", "|---|---|---|---|---|---|---|"]
    for label, points in r["curves"].items():
        for p in points:
            lines.append(f"| {label} | {p['sources']} | {p['prompt_tokens']} | "
                         f"{p['forward_passes']} | {p['tokens_processed']} | "
                         f"{_f(p['seconds'], 1)} | {_f(p['scoring_gflops'], 1)} |")
    for key in sorted(k for k in r if k.startswith("point_")):
        lines += _point(r[key])
    lines += ["", "## Scoring options on a 5-source leave-one-out (6 variants)", "",
              "| options | passes | tokens | seconds | speed-up vs naive | tokens vs naive |",
              "|---|---|---|---|---|---|"]
    for name, e in r["loo_savings_5_sources"].items():
        lines.append(f"| {name} | {e['forward_passes']} | {e['tokens']} | {_f(e['seconds'])} | "
                     f"{_f(e['speedup_vs_naive'])}x | {_f(e['tokens_ratio_vs_naive'])} |")
    lines += ["", "## Scoring layouts (one n=64 ablation audit, 5 sources)", "",
              "| variant | seconds | tokens | passes | model calls | distinct masks / asked |",
              "|---|---|---|---|---|---|"]
    for name, e in r["scoring_changes"].items():
        lines.append(f"| {name} | {_f(e['seconds'])} | {e['tokens']} | {e['forward_passes']} | "
                     f"{e['model_calls']} | {e['distinct_masks']} / {e['masks_asked']} |")
    lines += ["", "OpenMP wait policy (4 x 130-token pass, fresh process each):", "",
              "| policy | 1 thread s | 2 threads s | 2/1 |", "|---|---|---|---|"]
    for name, e in r.get("omp_wait_policy", {}).items():
        lines.append(f"| {name} | {_f(e['seconds_1_thread'])} | {_f(e['seconds_2_threads'])} | "
                     f"{_f(e['two_over_one'])} |")
    lines += ["", "## Model load and raw pass rate", ""]
    if "load_time" in r:
        t = r["load_time"]
        lines.append(f"- `CausalLM.load()`: {_f(t['gguf_first_run_seconds'], 1)} s on first run "
                     f"(empty RELYSCOPE_HOME: GGUF dequantised, cached), "
                     f"{_f(t['cached_seconds'], 2)} s cached "
                     f"({_f(t['first_over_cached'], 0)}x).")
    for p in r["passes_per_second"]:
        lines.append(f"- {p['prompt_tokens']}-token prompt: {_f(p['passes_per_second'])} "
                     f"passes/s ({_f(p['tokens_per_second'], 0)} tokens/s).")
    return "\n".join(lines) + "\n"
