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

import time
from typing import Any

import torch

from relyscope.audits.base import AuditContext, MethodResult
from relyscope.models.hooks import (
    decoder_layers,
    forward_hooks,
    layer_output_tensor,
    token_embedding,
)
from relyscope.models.scoring import ScoreItem

UNRELATED_TEXT = (
    "The committee reviewed the quarterly maintenance schedule for the municipal parks and "
    "agreed to repaint the benches near the east entrance before the autumn fair. Volunteers "
    "will sort donated books by colour, and the bakery on the corner plans a new bread. "
)


class CausalTracing:
    name = "tracing"

    def run(self, ctx: AuditContext) -> MethodResult:
        started = time.perf_counter()
        passes_before = ctx.budget.spent
        config = ctx.config
        rendered = ctx.full
        model = ctx.lm.model
        spans = {uid: span for uid, span in rendered.unit_token_spans.items() if span[1] > span[0]}
        n = config.tracing_samples
        embedding = token_embedding(model)
        sigma = config.tracing_noise_scale * float(embedding.weight.detach().float().std())
        generator = torch.Generator().manual_seed(config.seed)
        hidden = embedding.weight.shape[1]
        noise = {uid: torch.randn((n, b - a, hidden), generator=generator) * sigma
                 for uid, (a, b) in spans.items()}
        clean = ctx.full_score().total
        runner = _HookedRunner(ctx)
        scores: dict[str, float | None] = dict.fromkeys(ctx.unit_ids)
        corrupted: dict[str, torch.Tensor] = {}
        cut = None
        for uid in ctx.unit_ids:
            if uid not in spans:
                scores[uid] = 0.0  # an empty span carries nothing to corrupt
                continue
            if (cut := ctx.budget.check(n)) is not None:
                break
            corrupted[uid] = runner.logprobs(noise={spans[uid]: noise[uid]})
            scores[uid] = clean - float(corrupted[uid].mean())
        extras: dict[str, Any] = {
            "mode": "gaussian", "noise_scale": config.tracing_noise_scale, "noise_std": sigma,
            "samples": n, "seed": config.seed, "window": config.tracing_window}
        if cut is None and config.tracing_in_distribution:
            extras["in_distribution"] = self._in_distribution(ctx, spans, clean)
        if cut is None:
            ranked = sorted((u for u in corrupted), key=lambda u: -(scores[u] or 0.0))
            profiles = {}
            for uid in ranked[:config.tracing_top_units]:
                profile = self._layer_profile(ctx, runner, spans[uid], noise[uid], corrupted[uid])
                if profile is None:
                    cut = "pass budget during layer profiles"
                    break
                profiles[uid] = profile
            extras["layer_profiles"] = profiles
        return MethodResult(self.name, scores, extras, ctx.budget.spent - passes_before,
                            time.perf_counter() - started, cut)

    @staticmethod
    def _in_distribution(ctx: AuditContext, spans: dict[str, tuple[int, int]], clean: float
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
        before = ctx.lm.cost.forward_passes
        results = ctx.lm.scorer.score(items)
        ctx.budget.spent += ctx.lm.cost.forward_passes - before
        return {uid: clean - r.total for uid, r in zip(spans, results, strict=True)}

    @staticmethod
    def _layer_profile(ctx: AuditContext, runner: _HookedRunner, span: tuple[int, int],
                       noise: torch.Tensor, corrupted: torch.Tensor) -> list[dict] | None:
        window = ctx.config.tracing_window
        n_layers = runner.n_layers
        needed = 1 + len(range(0, n_layers, window)) * noise.shape[0]
        if ctx.budget.check(needed) is not None:
            return None
        clean_states = runner.hidden_states(span)
        baseline = float(corrupted.mean())
        profile = []
        for first in range(0, n_layers, window):
            layers = list(range(first, min(n_layers, first + window)))
            restored = runner.logprobs(noise={span: noise},
                                       restore={layer: (span, clean_states[layer])
                                                for layer in layers})
            profile.append({"layers": [layers[0], layers[-1]],
                            "indirect_effect": float(restored.mean()) - baseline})
        return profile


class _HookedRunner:
    """Forward passes over the full prompt + answer with noise and restoration hooks."""

    def __init__(self, ctx: AuditContext) -> None:
        self.ctx = ctx
        self.model = ctx.lm.model
        self.layers = decoder_layers(self.model)
        self.n_layers = len(self.layers)
        self.embedding = token_embedding(self.model)
        self.ids = torch.tensor([list(ctx.full.input_ids)])
        self.target_len = len(ctx.full.target_ids)

    @torch.inference_mode()
    def logprobs(self, *, noise: dict[tuple[int, int], torch.Tensor],
                 restore: dict[int, tuple[tuple[int, int], torch.Tensor]] | None = None
                 ) -> torch.Tensor:
        """Answer log-prob per noise sample (rows = samples)."""
        rows = next(iter(noise.values())).shape[0]
        hooks: list[Any] = [(self.embedding, _add_noise(noise))]
        for layer, (span, states) in (restore or {}).items():
            hooks.append((self.layers[layer], _restore(span, states)))
        ids = self.ids.expand(rows, -1).to(self.model.device)
        with forward_hooks(hooks):
            logits = self.model(input_ids=ids, logits_to_keep=self.target_len + 1).logits
        self.ctx.charge(rows)
        logprobs = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
        targets = ids[:, -self.target_len:]
        return logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum(-1).cpu()

    @torch.inference_mode()
    def hidden_states(self, span: tuple[int, int]) -> list[torch.Tensor]:
        """Clean outputs of every decoder layer at the span's positions (one pass)."""
        a, b = span
        captured: list[torch.Tensor] = [torch.empty(0)] * self.n_layers

        def capture(index: int):
            def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
                captured[index] = layer_output_tensor(output)[0, a:b].clone()
            return hook

        with forward_hooks([(layer, capture(i)) for i, layer in enumerate(self.layers)]):
            self.model(input_ids=self.ids.to(self.model.device), logits_to_keep=1)
        self.ctx.charge(1)
        return captured


def _add_noise(noise: dict[tuple[int, int], torch.Tensor]):
    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for (a, b), values in noise.items():
            output[:, a:b] += values.to(output.dtype)
        return output
    return hook


def _restore(span: tuple[int, int], states: torch.Tensor):
    a, b = span

    def hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        hidden = layer_output_tensor(output)
        hidden[:, a:b] = states.to(hidden.dtype)
        return output
    return hook
