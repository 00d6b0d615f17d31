"""Attention knockout: score a sequence with chosen attention edges removed.

A knockout removes the edges from a block of query positions to some key spans, in every
layer or only some, for every head or only some. It is the token trie's machinery (a 4D
mask handed to the model as is, booleans for SDPA and 0 / -inf floats for eager attention)
with one twist: the mask can differ per layer and per head, so each attention module gets its
own mask through a forward pre-hook that replaces its `attention_mask` argument. With no
edges removed the pass is the plain causal pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from relyscope.models.hooks import Span, decoder_layers
from relyscope.models.scoring import token_logprobs

_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")


@dataclass(frozen=True)
class Knockout:
    """Attention edges removed in one pass: from the `queries` positions to every `keys` span,
    in `layers` (None: all) and `heads` (None: all)."""

    queries: Span
    keys: tuple[Span, ...] = ()
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None

    @property
    def empty(self) -> bool:
        return not any(b > a for a, b in self.keys) or self.queries[1] <= self.queries[0]


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of every decoder layer."""
    found = []
    for index, layer in enumerate(decoder_layers(model)):
        module = next((getattr(layer, n) for n in _ATTENTION_NAMES if hasattr(layer, n)), None)
        if not isinstance(module, nn.Module):
            raise TypeError(f"decoder layer {index} of {type(model).__name__} has no attention "
                            f"module named {' or '.join(_ATTENTION_NAMES)}")
        found.append(module)
    return found


def _visible(knockouts: Sequence[Knockout], length: int, layer: int, heads: int,
             device: torch.device) -> torch.Tensor:
    """Boolean [rows, heads or 1, L, L]: causal, less each row's edges removed in `layer`."""
    per_head = any(k.heads is not None for k in knockouts)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    visible = causal.expand(len(knockouts), heads if per_head else 1, length, length).clone()
    for row, knockout in enumerate(knockouts):
        if knockout.layers is not None and layer not in knockout.layers:
            continue
        qa, qb = knockout.queries
        head_index = list(knockout.heads) if knockout.heads is not None else slice(None)
        for ka, kb in knockout.keys:
            visible[row, head_index, qa:qb, ka:kb] = False
    return visible


def _as_mask(visible: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """The 4D mask as the attention implementation reads it (SDPA: booleans, True attends;
    eager: added to the scores, so 0 / the dtype's minimum)."""
    if model.config._attn_implementation == "sdpa":  # type: ignore[union-attr]
        return visible
    dtype = next(model.parameters()).dtype
    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(
        ~visible, torch.finfo(dtype).min)


def _mask_hook(knockouts: Sequence[Knockout], layer: int, heads: int, model: nn.Module) -> Any:
    def hook(module: nn.Module, args: Any, kwargs: dict[str, Any]) -> Any:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if hidden is None:
            raise TypeError("attention module called without hidden_states")
        visible = _visible(knockouts, hidden.shape[1], layer, heads, hidden.device)
        return args, {**kwargs, "attention_mask": _as_mask(visible, model)}
    return hook


def supports_knockout(model: nn.Module) -> bool:
    """Knockouts need an attention implementation that takes an arbitrary 4D mask."""
    return model.config._attn_implementation in ("sdpa", "eager")  # type: ignore[union-attr]


def knockout_answer_logprobs(model: nn.Module, input_ids: Sequence[int], target_len: int,
                             knockouts: Sequence[Knockout], *, batch: int = 8) -> torch.Tensor:
    """Sum of the last `target_len` tokens' log-probs with each knockout's edges removed, one
    row per knockout; a CPU float32 tensor [len(knockouts)]."""
    return knockout_token_logprobs(model, input_ids, target_len, knockouts,
                                   batch=batch).sum(-1)


@torch.inference_mode()
def knockout_token_logprobs(model: nn.Module, input_ids: Sequence[int], target_len: int,
                            knockouts: Sequence[Knockout], *, batch: int = 8) -> torch.Tensor:
    """Log-prob of each of the last `target_len` tokens with each knockout's edges removed;
    a CPU float32 tensor [len(knockouts), target_len]."""
    if not supports_knockout(model):
        raise TypeError("attention knockout needs sdpa or eager attention, not "
                        f"{model.config._attn_implementation}")  # type: ignore[union-attr]
    length = len(input_ids)
    if not 0 < target_len < length:
        raise ValueError(f"target_len must be in [1, {length - 1}], got {target_len}")
    for knockout in knockouts:
        for a, b in (knockout.queries, *knockout.keys):
            if not 0 <= a <= b <= length:
                raise ValueError(f"span ({a}, {b}) is outside the sequence of {length} tokens")
    device = next(model.parameters()).device
    heads = int(model.config.num_attention_heads)  # type: ignore[union-attr]
    modules = attention_modules(model)
    values = []
    for first in range(0, len(knockouts), max(1, batch)):
        chunk = list(knockouts[first:first + max(1, batch)])
        ids = torch.tensor([list(input_ids)], device=device).expand(len(chunk), -1)
        base = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        handles = [module.register_forward_pre_hook(_mask_hook(chunk, i, heads, model),
                                                    with_kwargs=True)
                   for i, module in enumerate(modules)]
        try:
            logits = model(input_ids=ids,
                           attention_mask=_as_mask(base.expand(len(chunk), 1, -1, -1), model),
                           logits_to_keep=target_len + 1).logits
        finally:
            for handle in handles:
                handle.remove()
        values.append(token_logprobs(logits[:, :-1, :], ids[:, -target_len:]).cpu())
    return torch.cat(values) if values else torch.empty(0, target_len)
