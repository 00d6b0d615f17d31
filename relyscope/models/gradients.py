"""Gradient attributions of the answer's log-prob to the input token embeddings, via Captum.

Integrated gradients: Captum's `LayerIntegratedGradients` on the input-embedding layer, from
a baseline sequence (the same tokens with chosen positions replaced by a baseline token, so
every other embedding is the same at both ends of the path) to the real one. Its completeness
property says the per-token attributions sum to f(input) - f(baseline); what they miss is the
convergence delta, reported beside them. Input x gradient: Captum's
`LayerGradientXActivation` on the same layer (one forward+backward pass).

f is the teacher-forced sum of the answer tokens' log-probs. The weights are frozen for the
call (gradients flow to the embeddings only), and restored after it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from relyscope.models.hooks import token_embedding

GradientMethod = Literal["integrated_gradients", "input_x_gradient"]


@dataclass(frozen=True)
class GradientAttribution:
    """Per-token attributions (summed over the hidden dimension) of one sequence, with what
    integrated gradients' completeness is checked against."""

    per_token: tuple[float, ...]
    logprob: float | None  # f(input); None for input x gradient
    baseline_logprob: float | None  # f(baseline); None for input x gradient
    delta: float | None  # sum(per_token) - (f(input) - f(baseline))
    passes: int  # forward+backward passes over one sequence


@contextmanager
def _frozen_weights(model: nn.Module) -> Iterator[None]:
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _answer_logprob(model: nn.Module, target_len: int):  # noqa: ANN202 - Captum's forward_func
    def forward(ids: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=ids, logits_to_keep=target_len + 1).logits[:, :-1, :]
        # the log-softmax in at least float32, never below the model's own precision
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        picked = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, -target_len:, None])
        return picked.squeeze(-1).sum(-1)
    return forward


def gradient_attribution(model: nn.Module, input_ids: Sequence[int], target_len: int, *,
                         method: GradientMethod, baseline_positions: Sequence[int] = (),
                         baseline_token: int = 0, steps: int = 32, batch: int = 8
                         ) -> GradientAttribution:
    """Attributions of the answer's log-prob (the last `target_len` tokens) to each token."""
    from captum.attr import (  # Captum (and matplotlib under it) loads only when asked
        LayerGradientXActivation,
        LayerIntegratedGradients,
    )

    length = len(input_ids)
    if not 0 < target_len < length:
        raise ValueError(f"target_len must be in [1, {length - 1}], got {target_len}")
    device = next(model.parameters()).device
    ids = torch.tensor([list(input_ids)], device=device)
    forward = _answer_logprob(model, target_len)
    layer = token_embedding(model)
    with torch.inference_mode(False), torch.enable_grad(), _frozen_weights(model):
        if method == "input_x_gradient":
            attributions = LayerGradientXActivation(forward, layer).attribute(ids)
            per_token = attributions[0].float().sum(-1).detach().cpu()
            return GradientAttribution(tuple(per_token.tolist()), None, None, None, 1)
        baseline = ids.clone()
        if baseline_positions:
            baseline[0, list(baseline_positions)] = baseline_token
        attributions = LayerIntegratedGradients(forward, layer).attribute(
            ids, baselines=baseline, n_steps=steps, method="gausslegendre",
            internal_batch_size=max(1, batch))
        with torch.no_grad():
            ends = forward(torch.cat([ids, baseline]))
    per_token = attributions[0].float().sum(-1).detach().cpu()
    logprob, baseline_logprob = float(ends[0]), float(ends[1])
    delta = float(per_token.sum()) - (logprob - baseline_logprob)
    return GradientAttribution(tuple(per_token.tolist()), logprob, baseline_logprob, delta,
                               steps + 2)
