"""Hierarchical sentence-level leave-one-out (AttriBoT's idea): sources first, then sentences
only of the sources that matter.

With `method_settings.loo.expand_drop` set at source granularity, leave-one-out scores each
source as usual, then splits into sentences only the sources whose drop reaches `expand_drop`
nats (at most `max_expanded` of them, by drop) and removes each of their sentences alone, in
one prefix-shared call; the other sources' sentences cost nothing. The baseline of the
sentence drops is the sentence-level rendering of the full prompt (sentences joined by one
space), scored too, so each drop is exact against its own rendering. The report's
`methods.loo.hierarchy` says which sources were expanded, each sentence's drop, and the passes
spent beside the sentences a flat sentence-level audit would remove.
"""

from __future__ import annotations

from typing import Any

from relyscope.audits.base import AuditContext
from relyscope.models import ScoreItem, Variant


def expand_sentences(ctx: AuditContext, drops: dict[str, float | None], expand_drop: float,
                     max_expanded: int | None) -> dict[str, Any]:
    """Sentence drops of the sources whose drop reaches `expand_drop`; BudgetExhausted when
    the budget cannot afford them."""
    sources = [u.id for u in ctx.units if u.kind == "source"]
    ranked = sorted((uid for uid in sources if (drops.get(uid) or 0.0) >= expand_drop),
                    key=lambda uid: -(drops[uid] or 0.0))
    expanded = ranked[:max_expanded]
    renderer = ctx.lm.renderer(ctx.case, granularity="sentence",
                               tool_mode=ctx.renderer.tool_mode)
    parent = {u.id: u.parent for u in renderer.units}
    sentences = [u.id for u in renderer.units if u.parent in set(expanded)]
    rendered = [renderer.render(v) for v in
                [Variant()] + [Variant.without([sid]) for sid in sentences]]
    passes_before = ctx.passes
    if sentences:
        ctx.require(len(rendered))
        results = ctx.score_tokens([ScoreItem(r.input_ids, len(r.target_ids))
                                    for r in rendered])
    else:
        results = []
    baseline = results[0].total if results else None
    sentence_drops = {sid: baseline - s.total
                      for sid, s in zip(sentences, results[1:], strict=True)} if results else {}
    return {
        "expand_drop": expand_drop, "max_expanded": max_expanded, "expanded": expanded,
        "not_expanded": [uid for uid in sources if uid not in expanded],
        "sentence_drops": sentence_drops,
        "sentence_ranking": sorted(sentence_drops, key=lambda sid: -sentence_drops[sid]),
        "best_sentence": {uid: max((sid for sid in sentences if parent[sid] == uid),
                                   key=lambda sid: sentence_drops[sid]) for uid in expanded},
        "sentences_scored": len(sentences),
        "sentences_total": sum(1 for u in renderer.units if u.kind == "sentence"),
        "forward_passes": ctx.passes - passes_before, "baseline_logprob": baseline}
