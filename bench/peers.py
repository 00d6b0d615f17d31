"""The two contenders relyscope's ablation is timed against, on the same model object.

- ContextCite (PyPI ``context-cite``): ``ContextCiter`` with a partitioner that splits on the
  case's sources and a prompt template that makes its prompt token-identical to relyscope's
  (the case has no system message), so both score the same function of the same masks.
  Its response is preset to the case's answer, so neither side spends time generating.
- A naive loop: relyscope's own masks and surrogate, but one unbatched, uncached forward pass
  per variant with logits at every position.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from relyscope.audits.ablation import ContextAblation, fit_surrogate
from relyscope.audits.base import AuditContext, Budget
from relyscope.audits.registry import settings_for
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, ScoringOptions, Variant

NAIVE = ScoringOptions(layout="batch", reuse_prefix=False, target_only_logits=False,
                       max_batch_size=1, prefix_tree=False)
CC_TEMPLATE = "Context:\n{context}\n\nQuestion: {query}"


@dataclass
class Attribution:
    """What one contender produced for one case: weights per unit, cost, time."""

    weights: np.ndarray
    bias: float
    seconds: float
    forward_passes: int
    tokens: int
    logit_positions: int


def contextcite_partitioner(sources: list[str]) -> Any:
    """A ContextCite partitioner whose sources are the case's sources, joined as relyscope
    joins them (its default splits sentences with NLTK data that cannot be downloaded)."""
    from context_cite.context_partitioner import BaseContextPartitioner

    class SourcePartitioner(BaseContextPartitioner):
        def __init__(self, parts: list[str]) -> None:
            super().__init__("\n\n".join(parts))
            self.parts = list(parts)

        @property
        def num_sources(self) -> int:
            return len(self.parts)

        def split_context(self) -> None:
            return None

        def get_source(self, index: int) -> str:
            return self.parts[index]

        def get_context(self, mask: Any = None) -> str:
            keep = np.ones(len(self.parts), bool) if mask is None else np.asarray(mask, bool)
            return "\n\n".join(p for p, k in zip(self.parts, keep, strict=True) if k)

    return SourcePartitioner(sources)


def run_contextcite(lm: CausalLM, case: Case, n: int, *, batch_size: int = 1
                    ) -> tuple[Attribution, dict[str, Any]]:
    """ContextCite's attributions for the case's sources; its own timing of one audit."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from context_cite import ContextCiter

    lm.tokenizer.padding_side = "left"  # ContextCite asserts left padding for batches
    sources = [s.text for s in case.sources]
    citer = ContextCiter(lm.model, lm.tokenizer, "\n\n".join(sources), case.query,
                         num_ablations=n, batch_size=batch_size,
                         partitioner=contextcite_partitioner(sources),
                         prompt_template=CC_TEMPLATE)
    prompt_ids, prompt = citer._get_prompt_ids(return_prompt=True)
    citer._cache["output"] = prompt + (case.answer or "")  # preset response: no generation
    rendered = lm.renderer(case).render()
    check = {"same_prompt_tokens": tuple(prompt_ids) == rendered.prompt_ids,
             "same_answer_tokens": tuple(citer._response_ids) == rendered.target_ids}
    started = time.perf_counter()
    weights = citer.get_attributions(verbose=False)
    seconds = time.perf_counter() - started
    lengths = [len(citer._get_prompt_ids(mask=m)) + len(rendered.target_ids)
               for m in citer._masks]
    return Attribution(np.asarray(weights, float), 0.0, seconds, n, sum(lengths),
                       sum(lengths)), check


def run_naive(model_lm: CausalLM, case: Case, config: AuditConfig) -> Attribution:
    """relyscope's masks and LASSO, one unbatched uncached full-logit pass per variant."""
    lm = CausalLM(model_lm.model, model_lm.tokenizer, model_id="naive", revision="loop",
                  options=NAIVE)
    lm.scorer.cache = None
    ctx = AuditContext(case, lm, config, Budget())
    settings = settings_for(config, "ablation")
    train, _held_out = ContextAblation.masks(ctx, settings)
    renderer = lm.renderer(case)
    started = time.perf_counter()
    targets, positions = [], 0
    for mask in [np.ones(len(ctx.unit_ids), bool), *train]:
        dropped = [u for u, keep in zip(ctx.unit_ids, mask, strict=True) if not keep]
        rendered = renderer.render(Variant.without(dropped))
        targets.append(lm.score([rendered])[0].logit_prob)
        positions += len(rendered.input_ids)
    weights, bias = fit_surrogate(train, np.array(targets[1:]), settings.alpha,
                                  len(renderer.render().target_ids))
    seconds = time.perf_counter() - started
    return Attribution(weights, bias, seconds, lm.cost.forward_passes, lm.cost.tokens, positions)
