"""Causal tracing (ROME's recipe) adapted to spans of context.

Total effect: Gaussian noise (scale x the std of the token-embedding matrix, N seeded samples)
is added to the token embeddings of one unit's span; effect = logp_clean - mean logp_corrupted.
Indirect effect: for the top units, the clean hidden states of the unit's positions are
restored at a window of layers while the noise stays; the log-prob recovered, per window,
is a profile of where the unit is read. The in-distribution corruption replaces the unit's
tokens by the same number of tokens of unrelated text (one deterministic pass per unit), since
noise and in-distribution corruption can disagree.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from relyscope.audits.base import AuditContext
from relyscope.audits.method import AuditMethod, MethodSettings, Outcome
from relyscope.models import Edits, ScoreItem, Span

UNRELATED_TEXT = (
    "The committee reviewed the quarterly maintenance schedule for the municipal parks and "
    "agreed to repaint the benches near the east entrance before the autumn fair. Volunteers "
    "will sort donated books by colour, and the bakery on the corner plans a new bread. "
)


class TracingSettings(MethodSettings):
    samples: int = Field(default=3, ge=1, le=100)  # noise samples per unit
    noise_scale: float = Field(default=3.0, gt=0.0)  # x the token-embedding std
    window: int = Field(default=5, ge=1)  # layers restored together in a profile
    top_units: int = Field(default=2, ge=0)  # units that get a layer profile
    in_distribution: bool = True  # also the unrelated-text corruption


class CausalTracing(AuditMethod):
    name = "tracing"
    kind = "localisation"
    priority = 40
    column = 40
    Settings = TracingSettings

    def compute(self, ctx: AuditContext, settings: TracingSettings) -> Outcome:
        seed = ctx.config.seed
        spans = {uid: span for uid, span in ctx.full.unit_token_spans.items()
                 if span[1] > span[0]}
        n = settings.samples
        sigma = settings.noise_scale * ctx.lm.embedding_std()
        generator = ctx.lm.noise_generator(seed)
        noise = {uid: ctx.lm.embedding_noise(n, b - a, sigma, generator)
                 for uid, (a, b) in spans.items()}
        clean = ctx.full_score().total
        scores: dict[str, float | None] = dict.fromkeys(ctx.unit_ids)
        corrupted: dict[str, torch.Tensor] = {}
        cut = None
        for uid in ctx.unit_ids:
            if uid not in spans:
                scores[uid] = 0.0  # an empty span carries nothing to corrupt
                continue
            if (cut := ctx.budget.check(n)) is not None:
                break
            corrupted[uid] = ctx.edited_logprobs(Edits(noise={spans[uid]: noise[uid]}))
            scores[uid] = clean - float(corrupted[uid].mean())
        extras: dict[str, Any] = {
            "mode": "gaussian", "noise_scale": settings.noise_scale, "noise_std": sigma,
            "samples": n, "seed": seed, "window": settings.window}
        if cut is None and settings.in_distribution:
            extras["in_distribution"] = self._in_distribution(ctx, spans, clean)
        if cut is None:
            ranked = sorted((u for u in corrupted), key=lambda u: -(scores[u] or 0.0))
            profiles = {}
            for uid in ranked[:settings.top_units]:
                profile = self._layer_profile(ctx, settings.window, spans[uid], noise[uid],
                                              corrupted[uid])
                if profile is None:
                    cut = "pass budget during layer profiles"
                    break
                profiles[uid] = profile
            extras["layer_profiles"] = profiles
        return Outcome(scores, extras, cut)

    @staticmethod
    def _in_distribution(ctx: AuditContext, spans: dict[str, Span], clean: float
                         ) -> dict[str, float]:
        """Replace each span by as many tokens of unrelated text; one batched pass per unit."""
        filler = ctx.lm.tokenizer(UNRELATED_TEXT, add_special_tokens=False)["input_ids"]
        ids = list(ctx.full.input_ids)
        items = []
        for a, b in spans.values():
            reps = (b - a) // len(filler) + 1
            items.append(ScoreItem(tuple(ids[:a] + (filler * reps)[:b - a] + ids[b:]),
                                   len(ctx.full.target_ids)))
        if ctx.budget.check(len(items)) is not None:
            return {}
        results = ctx.score_tokens(items)
        return {uid: clean - r.total for uid, r in zip(spans, results, strict=True)}

    @staticmethod
    def _layer_profile(ctx: AuditContext, window: int, span: Span, noise: torch.Tensor,
                       corrupted: torch.Tensor) -> list[dict[str, Any]] | None:
        n_layers = ctx.lm.num_layers
        needed = 1 + len(range(0, n_layers, window)) * noise.shape[0]
        if ctx.budget.check(needed) is not None:
            return None
        clean_states = ctx.clean_span_states(span)
        baseline = float(corrupted.mean())
        profile = []
        for first in range(0, n_layers, window):
            layers = list(range(first, min(n_layers, first + window)))
            restored = ctx.edited_logprobs(Edits(
                noise={span: noise},
                restore={layer: (span, clean_states[layer]) for layer in layers}))
            profile.append({"layers": [layers[0], layers[-1]],
                            "indirect_effect": float(restored.mean()) - baseline})
        return profile
