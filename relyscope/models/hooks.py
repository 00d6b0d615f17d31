"""Forward hooks on decoder layers and the token embedding, and the hooked passes built on them.

A small resolver finds the decoder layer list in the common layouts (``model.layers``,
``transformer.h``, ``gpt_neox.layers``, ``model.decoder.layers``); nothing here is specific to
one architecture. The passes here take a model and count nothing: `CausalLM` wraps them and
counts their forward passes in its `cost`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from relyscope.models.scoring import token_logprobs

_LAYER_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers",
                "decoder.layers", "layers")

# (module, inputs, output) -> a replacement output, or None to keep it
Hook = Callable[[nn.Module, Any, Any], Any]
# [start, end) token positions of one sequence
Span = tuple[int, int]


@dataclass(frozen=True)
class Edits:
    """What a hooked pass changes: noise added to the token embeddings of spans (each tensor
    [rows, span length, hidden], one row per sample) and, per decoder layer index, a span's
    output replaced by given states ([span length, hidden], the same for every row)."""

    noise: Mapping[Span, torch.Tensor] = field(default_factory=dict)
    restore: Mapping[int, tuple[Span, torch.Tensor]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Sequences per pass: the noise samples, or one without noise."""
        return next(iter(self.noise.values())).shape[0] if self.noise else 1


def _resolve(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in _LAYER_PATHS:
        found = _resolve(model, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise TypeError(f"cannot find the decoder layers of {type(model).__name__}; "
                    f"looked for {', '.join(_LAYER_PATHS)}")


def token_embedding(model: nn.Module) -> nn.Module:
    embedding = model.get_input_embeddings()  # type: ignore[operator]
    if embedding is None:
        raise TypeError(f"{type(model).__name__} has no input embedding")
    return embedding


@contextmanager
def forward_hooks(hooks: Sequence[tuple[nn.Module, Hook]]) -> Iterator[None]:
    """Register forward hooks for the duration of the block; always removed afterwards."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layer_output_tensor(output: Any) -> Any:
    """The hidden-state tensor of a decoder layer's output (a tensor or a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def add_noise_hook(noise: Mapping[Span, torch.Tensor]) -> Hook:
    """An embedding hook adding `noise` (made on the embedding's device and dtype) to spans."""
    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for (a, b), values in noise.items():
            output[:, a:b] += values.to(output.dtype)
        return output
    return hook


def restore_hook(span: Span, states: torch.Tensor) -> Hook:
    """A decoder-layer hook writing `states` over the span's positions of its output."""
    a, b = span

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        hidden = layer_output_tensor(output)
        hidden[:, a:b] = states.to(hidden.dtype)
        return output
    return hook


def _ids(model: nn.Module, input_ids: Sequence[int], rows: int = 1) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.tensor([list(input_ids)], device=device).expand(rows, -1)


@torch.inference_mode()
def edited_answer_logprobs(model: nn.Module, input_ids: Sequence[int], target_len: int,
                           edits: Edits) -> torch.Tensor:
    """Sum of the last `target_len` tokens' log-probs per row (rows = noise samples) under the
    edits; a CPU float32 tensor [rows]."""
    hooks: list[tuple[nn.Module, Hook]] = []
    if edits.noise:
        hooks.append((token_embedding(model), add_noise_hook(edits.noise)))
    layers = decoder_layers(model)
    for layer, (span, states) in edits.restore.items():
        hooks.append((layers[layer], restore_hook(span, states)))
    ids = _ids(model, input_ids, edits.rows)
    with forward_hooks(hooks):
        logits = model(input_ids=ids, logits_to_keep=target_len + 1).logits
    picked = token_logprobs(logits[:, :-1, :], ids[:, -target_len:])
    return picked.sum(-1).cpu()


@torch.inference_mode()
def span_states(model: nn.Module, input_ids: Sequence[int], span: Span) -> list[torch.Tensor]:
    """Clean outputs of every decoder layer at the span's positions (one pass), on the
    model's device and in its dtype, one [span length, hidden] tensor per layer."""
    a, b = span
    layers = decoder_layers(model)
    captured: list[torch.Tensor] = [torch.empty(0)] * len(layers)

    def capture(index: int) -> Hook:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            captured[index] = layer_output_tensor(output)[0, a:b].clone()
        return hook

    with forward_hooks([(layer, capture(i)) for i, layer in enumerate(layers)]):
        model(input_ids=_ids(model, input_ids), logits_to_keep=1)
    return captured


@torch.inference_mode()
def attention_maps(model: nn.Module, input_ids: Sequence[int], target_len: int = 0
                   ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """Per-layer attention weights [heads, L, L] of one sequence (the caller switches on an
    attention implementation that returns them) and, with `target_len` > 0, the log-prob of
    each of the last `target_len` tokens from the same pass (CPU float32 [target_len]; only
    those rows' logits are computed)."""
    ids = _ids(model, input_ids)
    out = model(input_ids=ids, output_attentions=True, logits_to_keep=target_len + 1)
    maps = tuple(layer[0] for layer in out.attentions)
    if target_len <= 0:
        return maps, None
    logprobs = token_logprobs(out.logits[:, :-1], ids[:, -target_len:])[0]
    return maps, logprobs.float().cpu()


def gaussian_noise(embedding: nn.Module, shape: Sequence[int], std: float,
                   generator: torch.Generator) -> torch.Tensor:
    """N(0, std^2) noise made on the embedding weight's device and in its dtype."""
    weight = embedding.weight  # type: ignore[union-attr]
    return torch.randn(tuple(shape), generator=generator, device=weight.device,
                       dtype=weight.dtype) * std
