"""Quality benchmark: audit certified planted-ground-truth cases with every registered method.

Ground truth is certification by regeneration (bench/certify.py). The headline is the case
kinds where methods can disagree (bench.cases.DISAGREEMENT_KINDS): redundant copies, joint
evidence, conflicting sources, attention decoys, tool chains and partial reliance; single-fact
and parametric cases are controls. Per kind and method: whether the gold unit(s) rank first,
whether the kind's distractor (the decoy, the detail unit, the rival source, the upstream tool
call) ranks first instead, and how often the methods' top units agree. Per kind: candidates,
certified, and why the others were dropped.

Cases are drawn round-robin over the kinds, each certified case is audited at once, and the
results are rewritten after every case, so a run stopped by its time limit is an honest subset
(marked as such). Methods come from the registry: a method another module registers is a row.
Writes ``quality.json`` and ``quality.md``.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import machine
from bench.cases import DISAGREEMENT_KINDS, KINDS, CaseFactory
from bench.certify import certify
from bench.quality_md import markdown
from bench.report import write_json
from relyscope.audits import run_audit
from relyscope.audits.metrics import rank_correlation, ranking
from relyscope.audits.registry import method_class, method_names
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, Variant
from relyscope.report_model import Report

CONTROL_KINDS = ("single", "parametric")
AUDIT_VERDICTS = ("grounded", "parametric", "redundant-sources")
# the rankings measured by an intervention on every unit (the "reliance methods agree" column):
# not provenance (attention, gradients), not the learned estimate, not heads (it maps loo's
# top unit only)
MEASURED = ("loo", "ablation", "tools", "tracing", "tracing_in_dist", "knockout")
BENCH_CONFIG = AuditConfig(method_settings={"ablation": {"ablations": 32},
                                            "tracing": {"samples": 1, "top_units": 0}})


@dataclass(frozen=True)
class QualitySettings:
    targets: dict[str, int]  # certified cases wanted per kind
    config: AuditConfig = BENCH_CONFIG
    max_candidates: int = 120  # per kind
    seed: int = 0
    units: int = 4
    paraphrase_per_kind: int = 0  # certified cases per kind re-audited with the paraphrase
    max_seconds: float | None = None  # stop drawing candidates after this; results stay valid
    all_methods: bool = False  # every registered method, not only the registry's defaults
    extra_notes: tuple[str, ...] = field(default_factory=tuple)
    stem: str = "quality"  # results file names: <stem>.json, <stem>.md
    start_index: int = 0  # the first case index drawn per kind (a shard starts further on)


QUICK = QualitySettings(targets={**dict.fromkeys(DISAGREEMENT_KINDS, 1), "single": 1},
                        max_candidates=4, paraphrase_per_kind=1)
FULL = QualitySettings(targets={**dict.fromkeys(DISAGREEMENT_KINDS, 30), "single": 10,
                                "parametric": 5},
                       max_candidates=200, paraphrase_per_kind=3)
# every registered method on the first cases of each kind (the same cases as FULL's: a case is
# a function of seed, kind and index); the opt-in methods cost 5-6x the default audit
ALL_METHODS = QualitySettings(targets={**dict.fromkeys(DISAGREEMENT_KINDS, 3), "single": 3,
                                       "parametric": 2},
                              max_candidates=40, paraphrase_per_kind=3, all_methods=True,
                              stem="quality-all-methods")


def git_commit() -> dict[str, Any]:
    """The commit the run is from, and whether relyscope/ or bench/ differ from it."""
    root = Path(__file__).resolve().parent.parent
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=False).stdout
    dirty = git("status", "--porcelain", "--", "relyscope", "bench")  # "XY path" lines
    return {"commit": git("rev-parse", "HEAD").strip(),
            "uncommitted_changes": [line[3:] for line in dirty.splitlines()
                                    if not line[3:].startswith("bench/results")]}


def ranked_scores(report: Report) -> dict[str, dict[str, float | None]]:
    """Unit scores per ranking, for every method the report ran (from the registry): a
    provenance method's headline and rollout, a reliance or localisation method's score,
    and tracing's in-distribution corruption when present."""
    out: dict[str, dict[str, float | None]] = {}
    for name in report.settings.get("config", {}).get("methods", []):
        if method_class(name).kind == "provenance":
            for key in (name, f"{name}_rollout"):
                if any(key in u.provenance for u in report.units):
                    out[key] = {u.id: u.provenance.get(key) for u in report.units}
        elif name in report.methods:
            out[name] = {u.id: u.reliance.get(name) for u in report.units}
            found = report.methods[name].get("in_distribution")
            if isinstance(found, dict) and found:
                out[f"{name}_in_dist"] = {u.id: found.get(u.id) for u in report.units}
    return out


def distractor_of(case: Case) -> str | None:
    """The unit a kind plants to pull a method off the gold unit, if any."""
    meta = case.metadata
    if meta["kind"] in ("decoy", "partial"):
        return meta["distractor"]
    if meta["kind"] == "tool_chain":
        return meta["upstream"]
    if meta["kind"] == "conflicting":
        return next(uid for uid in meta["candidates"].values() if uid not in meta["gold"])
    return None


def topk_drops(lm: CausalLM, case: Case, order: list[str]) -> dict[str, float]:
    """Answer log-prob drop when the top-1 / top-3 units of `order` are removed."""
    renderer = lm.renderer(case)
    ks = [k for k in (1, 3) if k <= len(order)]
    rendered = [renderer.render()] + [renderer.render(Variant.without(order[:k])) for k in ks]
    full, *rest = lm.score(rendered)
    return {str(k): full.total - r.total for k, r in zip(ks, rest, strict=True)}


def audit_case(lm: CausalLM, case: Case, config: AuditConfig, paraphrase: bool
               ) -> dict[str, Any]:
    meta = case.metadata
    report = run_audit(case, lm, config)
    gold = list(meta["gold"])
    distractor = distractor_of(case)
    verdict_of = {u.id: u.verdict for u in report.units}
    row: dict[str, Any] = {
        "case_id": case.id, "kind": meta["kind"], "gold": gold, "distractor": distractor,
        "answer": report.answer, "verdicts": report.verdicts,
        "unit_verdicts": verdict_of,
        "joint_drop": report.methods["joint_removal"]["drop"],
        "lds": report.faithfulness.get("ablation", {}).get("lds"),
        "cost": report.cost["forward_passes"], "seconds": report.cost["seconds"],
        "method_cost": report.cost.get("per_method", {}), "methods": {}}
    if meta["kind"] == "tool_chain":
        drops = report.methods.get("tools", {}).get("drops", {})
        row["upstream_drop_on_later_call"] = (
            drops.get(meta["upstream"], {}).get("empty", {}).get("call:call_1"))
    rankings = ranked_scores(report)
    paraphrased = None
    if paraphrase:
        other = case.model_copy(update={"query": meta["paraphrase"]})
        paraphrased = ranked_scores(run_audit(other, lm, config))
    for method, scores in rankings.items():
        order = ranking(scores)
        if not order:
            continue
        base = method.removesuffix("_rollout").removesuffix("_in_dist")
        if method in report.faithfulness:
            drops = {k: v for k, v in report.faithfulness[method]["topk_drop"].items()
                     if v is not None}
        elif base != method:
            drops = topk_drops(lm, case, order)
        else:
            drops = {}
        top = order[:max(1, len(gold))]
        entry: dict[str, Any] = {
            "top": order[0], "scores": scores, "topk_drop": drops,
            "hit": (order[0] in gold) if gold else None,
            "gold_in_top": (sum(g in top for g in gold) / len(gold)) if gold else None,
            "distractor_first": (order[0] == distractor) if distractor else None,
            "distractor_above_gold": (
                order.index(distractor) < min(order.index(g) for g in gold if g in order)
                if distractor in order and any(g in order for g in gold) else None)}
        if paraphrased is not None and method in paraphrased:
            entry["stability"] = rank_correlation(scores, paraphrased[method])
        row["methods"][method] = entry
    for method, entry in row["methods"].items():  # top-1 agreement with the interventions
        for reference in ("loo", "ablation"):
            other = row["methods"].get(reference)
            entry[f"agrees_{reference}"] = (entry["top"] == other["top"]
                                            if other and method != reference else None)
    completeness = report.methods.get("integrated_gradients", {}).get("relative_delta")
    if completeness is not None:
        row["integrated_gradients_relative_delta"] = completeness
    return row


def _mean(values: Any) -> float | None:
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.fmean(present) if present else None


def _rate(rows: list[dict[str, Any]], method: str, key: str) -> dict[str, Any] | None:
    values = [r["methods"][method][key] for r in rows
              if method in r["methods"] and r["methods"][method][key] is not None]
    return {"rate": _mean(values), "cases": len(values)} if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    methods = list(dict.fromkeys(m for r in rows for m in r["methods"]))
    per_kind: dict[str, Any] = {}
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        reliance = [m for m in methods if m in MEASURED]
        agree = [len({r["methods"][m]["top"] for m in reliance if m in r["methods"]}) == 1
                 for r in mine]
        att_loo = [r["methods"]["attention"]["top"] == r["methods"]["loo"]["top"]
                   for r in mine if {"attention", "loo"} <= set(r["methods"])]
        distractor_verdicts = Counter(r["unit_verdicts"].get(r["distractor"]) for r in mine
                                      if r["distractor"])
        gold_verdicts = Counter(v for r in mine for g in r["gold"]
                                for v in [r["unit_verdicts"].get(g)])
        entry: dict[str, Any] = {
            "cases": len(mine),
            "methods": {m: {"gold_first": _rate(mine, m, "hit"),
                            "gold_in_top": _rate(mine, m, "gold_in_top"),
                            "distractor_first": _rate(mine, m, "distractor_first"),
                            "distractor_above_gold": _rate(mine, m, "distractor_above_gold"),
                            "top1_drop": _mean(r["methods"][m]["topk_drop"].get("1")
                                               for r in mine if m in r["methods"]),
                            "stability": _mean(r["methods"][m].get("stability")
                                               for r in mine if m in r["methods"]),
                            "agrees_loo": _rate(mine, m, "agrees_loo"),
                            "agrees_ablation": _rate(mine, m, "agrees_ablation")}
                        for m in methods},
            "reliance_methods_agree_on_top": _mean(agree),
            "attention_agrees_with_loo": _mean(att_loo),
            "audit_verdicts": {v: _mean(v in r["verdicts"] for r in mine)
                               for v in AUDIT_VERDICTS},
            "gold_unit_verdicts": dict(gold_verdicts),
            "distractor_unit_verdicts": {str(k): v for k, v in distractor_verdicts.items()},
            "joint_drop_mean": _mean(r["joint_drop"] for r in mine),
            "loo_max_single_drop_mean": _mean(
                max((s for s in r["methods"]["loo"]["scores"].values() if s is not None),
                    default=None) for r in mine if "loo" in r["methods"]),
        }
        if kind == "tool_chain":
            drops = [r.get("upstream_drop_on_later_call") for r in mine]
            entry["upstream_dependence"] = {
                "mean_drop_on_later_call": _mean(drops),
                "detected_rate": _mean(d >= 2.0 for d in drops if d is not None)}
        per_kind[kind] = entry
    costs = {m: {"forward_passes": _mean(r["method_cost"].get(m, {}).get("forward_passes")
                                         for r in rows),
                 "seconds": _mean(r["method_cost"].get(m, {}).get("seconds") for r in rows)}
             for m in methods if any(m in r["method_cost"] for r in rows)}
    lds = [r["lds"] for r in rows if r["lds"] is not None]
    agreement = {m: {ref: _rate(rows, m, f"agrees_{ref}") for ref in ("loo", "ablation")}
                 for m in methods}
    ig_delta = [r["integrated_gradients_relative_delta"] for r in rows
                if r.get("integrated_gradients_relative_delta") is not None]
    return {"methods": methods, "kinds": per_kind, "cost_per_case": costs,
            "lds_ablation": {"mean": _mean(lds), "cases": len(lds)},
            "agreement_with_interventions": agreement,
            "integrated_gradients_completeness": {
                "median_relative_delta": statistics.median(ig_delta) if ig_delta else None,
                "within_25_percent": _mean(d <= 0.25 for d in ig_delta),
                "cases": len(ig_delta)},
            "audit_per_case": {"forward_passes": _mean(r["cost"] for r in rows),
                               "seconds": _mean(r["seconds"] for r in rows)}}


def certification_counts(certificates: list[dict[str, Any]], kinds: list[str]
                         ) -> dict[str, Any]:
    out = {}
    for kind in kinds:
        mine = [c for c in certificates if c["kind"] == kind]
        out[kind] = {"candidates": len(mine), "certified": sum(c["certified"] for c in mine),
                     "dropped": dict(Counter(c["why"] for c in mine if not c["certified"])
                                     .most_common())}
    return out


def run(lm: CausalLM, settings: QualitySettings, out_dir: Path, *, mode: str,
        log=print) -> dict[str, Any]:
    started = time.monotonic()
    if settings.all_methods:
        settings = replace(settings, config=settings.config.model_copy(
            update={"methods": method_names()}))
    info = machine.machine_info()
    source = git_commit()
    factory = CaseFactory(settings.seed, settings.units)
    kinds = [k for k in KINDS if settings.targets.get(k)]
    drawn = dict.fromkeys(kinds, 0)
    kept = dict.fromkeys(kinds, 0)
    certificates: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    stopped_by_time = False

    def open_kinds() -> list[str]:
        return [k for k in kinds if kept[k] < settings.targets[k]
                and drawn[k] < settings.max_candidates]

    def write() -> dict[str, Any]:
        result = {
            "benchmark": "quality", "mode": mode, **source, "machine": info,
            "loadavg_end": machine.load(), "model": lm.info.__dict__,
            "config": settings.config.model_dump(mode="json"), "seed": settings.seed,
            "units_per_case": settings.units, "targets": settings.targets,
            "start_index": settings.start_index,
            "max_candidates_per_kind": settings.max_candidates,
            "complete": not open_kinds(), "stopped_by_time_limit": stopped_by_time,
            "certification": {
                "counts": certification_counts(certificates, kinds),
                "rule": "value in the greedy answer; gone when the gold unit(s) are removed; "
                        "kept when any other single unit is removed (parametric: kept with "
                        "every unit removed); redundant: kept without either copy alone; "
                        "joint: gone without either gold unit alone; partial: removing the "
                        "detail unit changes the answer's text; the answer repeats no name "
                        "of a non-gold unit",
                "certificates": certificates},
            "summary": summarise(rows) if rows else {}, "cases": rows,
            "seconds": time.monotonic() - started,
            "notes": [*settings.extra_notes,
                      "methods: every registered method (`python -m bench quality "
                      "--all-methods`); its cases are the first ones of quality.json's run "
                      "with the same seed" if settings.all_methods else
                      "methods: the registry's defaults at the commit above (`--all-methods` "
                      "runs every method on the first cases of each kind: "
                      "quality-all-methods.md)",
                      *(["no paraphrased re-audits in this run: no stability figures"]
                        if settings.paraphrase_per_kind == 0 else
                        [f"stability: the first {settings.paraphrase_per_kind} certified "
                         "cases of each kind re-audited with the paraphrased question"]),
                      "attention_rollout shares the attention pass; tracing_in_dist shares "
                      "tracing's passes"]}
        write_json(out_dir / f"{settings.stem}.json", result)
        (out_dir / f"{settings.stem}.md").write_text(markdown(result), encoding="utf-8")
        return result

    while open_kinds():
        if settings.max_seconds and time.monotonic() - started > settings.max_seconds:
            stopped_by_time = True
            log("time limit reached: writing the subset done so far")
            break
        for kind in open_kinds():
            if settings.max_seconds and time.monotonic() - started > settings.max_seconds:
                break
            case = factory.make(kind, settings.start_index + drawn[kind])
            drawn[kind] += 1
            certified, cert = certify(lm, case)
            certificates.append(cert.as_dict())
            if certified is None:
                log(f"certify {case.id}: {cert.reason}")
                continue
            kept[kind] += 1
            rows.append(audit_case(lm, certified, settings.config,
                                   kept[kind] <= settings.paraphrase_per_kind))
            log(f"audit {case.id}: {rows[-1]['seconds']:.1f}s kept {kept}")
            write()
    return write()


def merge(parts: list[dict[str, Any]], *, log=print) -> dict[str, Any]:
    """One result from shard runs (the same seed and settings, disjoint case indices or
    kinds; `python -m bench.quality_merge`): certificates and rows are pooled (a case id seen
    twice is kept once), and the counts and summary are recomputed from them."""
    first = parts[0]
    for part in parts[1:]:
        for key in ("seed", "units_per_case", "config"):
            if part[key] != first[key]:
                raise ValueError(f"shards differ in {key}: {part[key]!r} != {first[key]!r}")
    seen: set[str] = set()
    certificates, rows = [], []
    for part in parts:
        certificates += [c for c in part["certification"]["certificates"]
                         if c["case_id"] not in seen]
        rows += [r for r in part["cases"] if r["case_id"] not in seen]
        seen |= {c["case_id"] for c in part["certification"]["certificates"]}
    kinds = [k for k in KINDS if any(c["kind"] == k for c in certificates)]
    commits = sorted({p["commit"] for p in parts})
    certified = Counter(r["kind"] for r in rows)
    targets: dict[str, int] = {}  # a shard run with --kinds names only its own kinds
    for part in parts:
        for kind, wanted in part["targets"].items():
            targets[kind] = max(wanted, targets.get(kind, 0))
    merged = {**first, "targets": targets,
              "commit": commits[0] if len(commits) == 1 else ", ".join(commits),
              "uncommitted_changes": sorted({f for p in parts for f in p["uncommitted_changes"]}),
              "loadavg_end": parts[-1]["loadavg_end"],
              "complete": all(certified[k] >= n for k, n in targets.items()),
              "stopped_by_time_limit": any(p["stopped_by_time_limit"] for p in parts),
              "shards": [{"commit": p["commit"], "start_index": p.get("start_index", 0),
                          "kinds": sorted({c["kind"] for c in p["certification"]
                                           ["certificates"]}),
                          "cases": len(p["cases"]), "seconds": p["seconds"],
                          "loadavg_start": p["machine"]["loadavg_start"]} for p in parts],
              "seconds": max(p["seconds"] for p in parts),
              "summary": summarise(rows) if rows else {}, "cases": rows}
    merged["certification"] = {**first["certification"],
                               "counts": certification_counts(certificates, kinds),
                               "certificates": certificates}
    merged["notes"] = [*first["notes"], *(
        [f"pooled from {len(parts)} shard runs of the same seed and settings over disjoint "
         "case indices, run at the same time (`shards` in quality.json); minutes are the "
         "longest shard's"] if len(parts) > 1 else [])]
    log(f"merged {len(parts)} shards: {len(rows)} certified cases of {len(certificates)}")
    return merged
