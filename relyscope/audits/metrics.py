"""Faithfulness of the audit itself.

For every method's ranking: the log-prob drop when its top-k units are removed (k = 1, 3),
ERASER comprehensiveness (mean top-k drop) and sufficiency (mean drop when only the top-k are
kept: lower is better), and the Spearman correlation of attention provenance with the method.
LDS comes from the ablation surrogate's held-out masks.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import spearmanr

from relyscope.audits.base import ANSWER, AuditContext, MethodResult, Probe

TOP_K = (1, 3)


def ranking(scores: dict[str, float | None]) -> list[str]:
    scored = [(uid, s) for uid, s in scores.items() if s is not None and not math.isnan(s)]
    return [uid for uid, _ in sorted(scored, key=lambda pair: -pair[1])]


def plan_probes(ctx: AuditContext, results: dict[str, MethodResult]) -> list[Probe]:
    probes: list[Probe] = []
    for result in results.values():
        order = ranking(result.scores)
        for k in TOP_K:
            if k <= len(order):
                probes += [(ctx.removal(order[:k]), ANSWER), (ctx.keep_only(order[:k]), ANSWER)]
    return probes


def faithfulness(ctx: AuditContext, results: dict[str, MethodResult],
                 scored: dict[Probe, Any]) -> dict[str, dict[str, Any]]:
    full = ctx.full_score().total
    attention = results.get("attention")
    out: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        order = ranking(result.scores)
        topk: dict[str, float | None] = {}
        keep: dict[str, float | None] = {}
        for k in TOP_K:
            if k > len(order):
                continue
            without = scored.get((ctx.removal(order[:k]), ANSWER))
            only = scored.get((ctx.keep_only(order[:k]), ANSWER))
            topk[str(k)] = None if without is None else full - without.total
            keep[str(k)] = None if only is None else full - only.total
        entry: dict[str, Any] = {
            "topk_drop": topk,
            "comprehensiveness": _mean(topk.values()),
            "sufficiency": _mean(keep.values()),
            "lds": result.extras.get("lds"),
        }
        if attention is not None and name != "attention":
            entry["spearman_vs_attention"] = rank_correlation(attention.scores, result.scores)
        out[name] = entry
    return out


def rank_correlation(a: dict[str, float | None], b: dict[str, float | None]) -> float | None:
    shared = [u for u in a if a[u] is not None and b.get(u) is not None]
    if len(shared) < 3:
        return None
    x, y = [a[u] for u in shared], [b[u] for u in shared]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def _mean(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
