"""The Markdown page of the quality benchmark (bench/quality.py writes the JSON beside it)."""

from __future__ import annotations

from typing import Any

from bench.cases import DISAGREEMENT_KINDS, KINDS
from bench.report import fmt

DISTRACTOR = {"conflicting": "the rival source", "decoy": "the decoy",
              "tool_chain": "the upstream call", "partial": "the detail unit"}


FAMILY = {"attention": "provenance (attention)", "attention_rollout": "provenance (attention)",
          "integrated_gradients": "gradient", "input_x_gradient": "gradient",
          "knockout": "intervention on attention edges",
          "heads": "intervention on heads (maps loo's top unit)",
          "loo": "intervention (removal)", "ablation": "intervention (removal)",
          "tools": "intervention (removal)", "tracing": "intervention (activations)",
          "tracing_in_dist": "intervention (activations)",
          "learned": "learned estimate of ablation"}


def _cell(rate: dict[str, Any] | None) -> str:
    return f"{rate['rate']:.2f} ({rate['cases']})" if rate else "–"


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "–"


def markdown(result: dict[str, Any]) -> str:
    m, cert = result["machine"], result["certification"]["counts"]
    summary = result["summary"]
    kinds = [k for k in KINDS if k in summary.get("kinds", {})]
    headline = [k for k in DISAGREEMENT_KINDS if k in kinds]
    controls = [k for k in kinds if k not in headline]
    dirty = result["uncommitted_changes"]
    if result["complete"]:
        scope = "Complete run: every kind reached its target or its candidate limit."
    else:
        scope = ("**Subset**: the run stopped at its time limit before every kind reached "
                 f"its target ({', '.join(f'{k} {n}' for k, n in result['targets'].items())} "
                 "certified cases wanted); the tables cover the cases certified by then.")
    lines = [
        f"# Quality benchmark ({result['mode']})", "",
        f"From commit `{result['commit']}`"
        + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "") + ". "
        f"Model {result['model']['id']} ({result['model']['dtype']}), {m['cpu']}, "
        f"{m['cores']} cores, torch {m['torch']}; load average {m['loadavg_start']} at start, "
        f"{result['loadavg_end']} at the end; {result['seconds'] / 60:.0f} minutes. "
        f"{result['units_per_case']} units per case. {scope}", "",
        "## Ground truth: certification by regeneration", "",
        f"Rule: {result['certification']['rule']}.", "",
        "| kind | candidates | certified | dropped, by reason |", "|---|---|---|---|"]
    for kind, c in cert.items():
        lines.append(f"| {kind} | {c['candidates']} | {c['certified']} | "
                     f"{_counts(c['dropped'])} |")
    if not summary:
        return "\n".join(lines + ["", "No case was certified."]) + "\n"
    methods = summary["methods"]
    per = summary["kinds"]
    lines += [
        "", "## Where the methods disagree", "",
        "Gold unit ranked first, share of certified cases (redundant and joint: share of the "
        "two gold units in the method's top two). Cases in brackets.", "",
        "| method | " + " | ".join(headline + controls) + " |",
        "|---" * (len(headline + controls) + 1) + "|"]
    for method in methods:
        cells = [_cell(per[k]["methods"][method]["gold_in_top"]) for k in headline + controls]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    with_distractor = [k for k in headline if k in DISTRACTOR]
    if with_distractor:
        lines += [
            "", "The kind's distractor ranked first instead ("
            + "; ".join(f"{k}: {DISTRACTOR[k]}" for k in with_distractor) + "):", "",
            "| method | " + " | ".join(with_distractor) + " |",
            "|---" * (len(with_distractor) + 1) + "|"]
        for method in methods:
            cells = [_cell(per[k]["methods"][method]["distractor_first"])
                     for k in with_distractor]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "", "Per kind: how often the methods that intervene on every unit (leave-one-out, "
        "ablation, tools, tracing, knockout, where they ran) agree on the top unit, "
        "attention against leave-one-out, the audit verdicts, the unit verdicts of the gold "
        "units and of the distractor, and the joint removal's drop against the largest "
        "leave-one-out drop (nats).", "",
        "| kind | cases | reliance methods agree | attention = loo | grounded | "
        "redundant-sources | gold verdicts | distractor verdicts | joint drop | "
        "max loo drop |", "|---" * 10 + "|"]
    for kind in headline + controls:
        k = per[kind]
        lines.append(
            f"| {kind} | {k['cases']} | {fmt(k['reliance_methods_agree_on_top'])} | "
            f"{fmt(k['attention_agrees_with_loo'])} | "
            f"{fmt(k['audit_verdicts']['grounded'])} | "
            f"{fmt(k['audit_verdicts']['redundant-sources'])} | "
            f"{_counts(k['gold_unit_verdicts'])} | {_counts(k['distractor_unit_verdicts'])} | "
            f"{fmt(k['joint_drop_mean'], 1)} | {fmt(k['loo_max_single_drop_mean'], 1)} |")
    chain = per.get("tool_chain", {}).get("upstream_dependence")
    if chain:
        lines += ["", "Tool chains: emptying the upstream call's output lowers the later "
                  f"call's log-prob by {fmt(chain['mean_drop_on_later_call'], 1)} nats on "
                  f"average (at least 2 nats in {fmt(chain['detected_rate'])} of the cases); "
                  "answer-level scores do not measure this dependence, `tools`' per-call "
                  "drops do."]
    lines += ["", "## Cost, faithfulness and stability per method", "",
              "Top-1 removal drop (nats; the mean of the per-kind means), stability under the "
              "paraphrased question (Spearman, on the paraphrased subset), passes and seconds "
              "per case (loo, tools and ablation passes include their share of the runner's "
              "shared up-front scoring, their seconds do not: that scoring is in the whole "
              f"audit's seconds). Whole audit: "
              f"{fmt(summary['audit_per_case']['forward_passes'], 1)} passes, "
              f"{fmt(summary['audit_per_case']['seconds'])} s per case; ablation LDS "
              f"{fmt(summary['lds_ablation']['mean'])} over "
              f"{summary['lds_ablation']['cases']} cases.", "",
              "| method | top-1 drop | stability | passes/case | s/case |", "|---|---|---|---|---|"]
    costs = summary["cost_per_case"]
    for method in methods:
        drops = [per[k]["methods"][method]["top1_drop"] for k in kinds]
        present = [d for d in drops if d is not None]
        stab = [per[k]["methods"][method]["stability"] for k in kinds]
        stab = [s for s in stab if s is not None]
        cost = costs.get(method, {})
        lines.append(f"| {method} | {fmt(sum(present) / len(present) if present else None, 1)}"
                     f" | {fmt(sum(stab) / len(stab) if stab else None)} | "
                     f"{fmt(cost.get('forward_passes'), 1)} | {fmt(cost.get('seconds'))} |")
    agreement = summary.get("agreement_with_interventions")
    if agreement:
        lines += ["", "## Where each family agrees with leave-one-out and ablation", "",
                  "Share of certified cases where the method's top-1 unit is leave-one-out's / "
                  "ablation's top-1 unit (cases in brackets); the kinds column lists the kinds "
                  "where agreement with ablation is below 0.5.", "",
                  "| method | family | = loo | = ablation | disagrees with ablation on |",
                  "|---|---|---|---|---|"]
        for method in methods:
            low = [k for k in kinds
                   if (r := per[k]["methods"][method].get("agrees_ablation"))
                   and r["rate"] is not None and r["rate"] < 0.5]
            lines.append(f"| {method} | {FAMILY.get(method, '')} | "
                         f"{_cell(agreement[method]['loo'])} | "
                         f"{_cell(agreement[method]['ablation'])} | {', '.join(low) or '–'} |")
    ig = summary.get("integrated_gradients_completeness")
    if ig and ig.get("cases"):
        lines += ["", "Integrated gradients' completeness: the median |convergence delta| is "
                  f"{fmt(ig['median_relative_delta'])} of logp(input) - logp(baseline); "
                  f"within 25% in {fmt(ig['within_25_percent'])} of {ig['cases']} cases."]
    lines += ["", "Notes: " + "; ".join(result["notes"]) + "."]
    return "\n".join(lines) + "\n"
