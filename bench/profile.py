"""Where an audit's time, passes and tokens go.

`python -m bench.profile [OUT]` writes the top functions by own time of one n=64 ablation
audit on a 5-source case (cProfile) and the share spent in matrix multiplies (torch linear),
attention and everything else.

`python -m bench.profile --passes` writes bench/results/profile.json/.md: the passes and
tokens processed of 40-unit audits by phase (the full answer and joint removal, leave-one-out,
the ablation masks, the faithfulness checks), flat and screened. Tokens are counted exactly
as the scorer runs them (trie nodes, relyscope.models.tree) without running the model: each
phase alone, and its marginal share when all phases share one trie (one scoring call, as in
an unbounded audit). The faithfulness checks' variants depend on each method's ranking; they
are taken from the 40-source point's measured rankings in perf.json where present.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.machine import load  # noqa: E402
from bench.perf import fresh, perf_case  # noqa: E402
from relyscope.audits import run_audit  # noqa: E402
from relyscope.config import AuditConfig
from relyscope.models import CausalLM  # noqa: E402

BUCKETS = {"matmul (torch linear)": ("_nn.linear",),
           "attention (sdpa)": ("scaled_dot_product_attention",),
           "KV cache copies": ("deepcopy", "batch_repeat_interleave", "_reconstruct",
                               "index_select"),
           "rendering + tokenising": ("apply_chat_template", "_encode_plus", "__call__' of "
                                      "'tokenizers", "encode_batch")}


def main(out: Path) -> str:
    lm = CausalLM.load()
    case = perf_case(0)
    config = AuditConfig(methods=("ablation",), ablations=64)
    run_audit(case, fresh(lm, "warm"), config)  # warm-up
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    report = run_audit(case, fresh(lm, "profiled"), config)
    profiler.disable()
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    own: dict[str, float] = {}
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        label = f"{filename}:{line}({name})"
        own[label] = own.get(label, 0.0) + tottime
    buckets = dict.fromkeys(BUCKETS, 0.0)
    for label, value in own.items():
        for bucket, needles in BUCKETS.items():
            if any(n in label for n in needles):
                buckets[bucket] += value
                break
    text = io.StringIO()
    text.write(f"one ablation audit (n=64, 5 sources): {seconds:.2f} s, "
               f"{report.cost['forward_passes']} passes, {report.cost['tokens']} tokens, "
               f"load average {load()}\n\nshare of the audit's time by own time:\n")
    for bucket, value in buckets.items():
        text.write(f"  {bucket:28s} {value:7.2f} s  {100 * value / seconds:5.1f}%\n")
    rest = seconds - sum(buckets.values())
    text.write(f"  {'everything else':28s} {rest:7.2f} s  {100 * rest / seconds:5.1f}%\n\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue(), encoding="utf-8")
    return text.getvalue()


# -- passes and tokens by phase ----------------------------------------------------------


def _phases(case: Any, config: AuditConfig, lm: CausalLM, rankings: dict[str, list[str]],
            loo_units: list[str] | None) -> dict[str, list[Any]]:
    """The variants of each phase of an audit of `case` under `config` (no model runs)."""
    from relyscope.audits.ablation import ContextAblation
    from relyscope.audits.base import AuditContext, Budget
    from relyscope.audits.registry import settings_for
    from relyscope.models import Variant

    ctx = AuditContext(case, lm, config, Budget())
    ids = ctx.unit_ids
    phases: dict[str, list[Any]] = {"full + joint removal": [Variant(), ctx.removal(ids)]}
    if "loo" in config.methods:
        phases["leave-one-out"] = [ctx.removal([u]) for u in (loo_units or ids)]
    if "ablation" in config.methods:
        settings = settings_for(config, "ablation")
        train, held = ContextAblation.masks(ctx, settings)
        used = rankings.get("_masks") or len(train)
        phases["ablation masks"] = [ContextAblation.probe(ctx, m)[0]
                                    for m in [*train[:used], *held]]
    faith = []
    for order in (v for k, v in rankings.items() if not k.startswith("_")):
        for k in (1, 3):
            faith += [ctx.removal(order[:k]), ctx.keep_only(order[:k])]
    phases["faithfulness checks"] = faith
    return phases


def passes_profile(out_dir: Path) -> dict[str, Any]:
    import json
    import subprocess

    from bench.report import write_json
    from relyscope.models.tree import TokenTrie

    root = Path(__file__).resolve().parent.parent
    lm = CausalLM.load()
    perf = json.loads((out_dir / "perf.json").read_text(encoding="utf-8"))
    point = perf.get("point_40", {}).get("runs", {})
    case = perf_case(0, sources=40)
    renderer = lm.renderer(case)
    from bench.perf import FULL, SCREENED, SCREENED_AUTO

    audits = {"flat (today's curve config)": (FULL.curve_config, "flat"),
              "screened-auto": (SCREENED_AUTO, "screened-auto"),
              "screened": (SCREENED, "screened")}
    result: dict[str, Any] = {
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                 text=True, cwd=root).stdout.strip(),
        "loadavg": load(), "case": case.id, "units": len(case.sources), "audits": {}}
    for label, (config, key) in audits.items():
        run = point.get(key)
        if run is None:
            continue
        rankings = dict(run.get("top3", {}))
        if run.get("ablation", {}).get("masks_used"):
            rankings["_masks"] = run["ablation"]["masks_used"]
        screen = run.get("loo_screen")
        phases = _phases(case, config, lm, rankings, screen["units"] if screen else None)
        seqs = {name: [renderer.render(v).input_ids for v in variants]
                for name, variants in phases.items()}
        everything = [s for group in seqs.values() for s in group]
        total = len(TokenTrie.build(everything))
        rows = {}
        for name, group in seqs.items():
            rest = [s for other, g in seqs.items() if other != name for s in g]
            rows[name] = {"passes": len(set(map(tuple, group))),
                          "tokens_alone": len(TokenTrie.build(group)) if group else 0,
                          "tokens_marginal": total - (len(TokenTrie.build(rest)) if rest else 0)}
        result["audits"][label] = {"tokens_one_trie": total, "phases": rows,
                                   "measured": {k: run.get(k) for k in
                                                ("forward_passes", "tokens_processed")}}
    write_json(out_dir / "profile.json", result)
    lines = ["# Where the passes and tokens of a 40-unit audit go (issue 14)", "",
             f"Commit `{result['commit']}`, load {result['loadavg']}; case {result['case']} "
             f"({result['units']} sources, the 40-source point of the sources curve). Tokens "
             "are trie nodes (what the scorer runs), counted without the model; 'marginal' is "
             "what a phase adds to one trie of all phases. The measured audits (perf.json "
             "point_40) score in several calls (adaptive rounds, the screen, the checks), so "
             "their totals sit above the one-trie count; attention runs its own pass of the "
             "full prompt, outside the trie.", ""]
    for label, a in result["audits"].items():
        lines += [f"## {label}", "",
                  f"One trie of every phase: {a['tokens_one_trie']} tokens; measured audit: "
                  f"{a['measured']['forward_passes']} passes, "
                  f"{a['measured']['tokens_processed']} tokens.", "",
                  "| phase | distinct variants | tokens alone | tokens marginal | share |",
                  "|---|---|---|---|---|"]
        for name, r in a["phases"].items():
            share = r["tokens_marginal"] / a["tokens_one_trie"]
            lines.append(f"| {name} | {r['passes']} | {r['tokens_alone']} | "
                         f"{r['tokens_marginal']} | {share:.0%} |")
        lines.append("")
    (out_dir / "profile.md").write_text("\n".join(lines), encoding="utf-8")
    return result


if __name__ == "__main__":
    if "--passes" in sys.argv:
        passes_profile(Path(__file__).resolve().parent / "results")
        print((Path(__file__).resolve().parent / "results" / "profile.md").read_text())
        sys.exit(0)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent / "results" / "profile.txt")
    print(main(target)[:3000])
