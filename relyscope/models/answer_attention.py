"""The attention pass: one forward pass under SDPA that keeps, of every layer's attention, only
what the methods read: the weights of the rows that predict the answer, per head, and the
attention rollout of those rows, computed from each layer's queries and keys (recorded during
the pass, dropped after it).

Eager attention with `output_attentions` instead materialises and returns the [heads, L, L]
weights of every layer: memory and time that grow with L squared (for the packaged model at
2048 tokens, 4.5 GB of weights and several times the time of an SDPA pass;
`python -m bench.attention_pass` measures both). The rows kept here are [heads, A, L] for an
answer of A tokens; the queries and keys held during the pass, L x (heads + kv heads) x head
size per layer.

The capture is an attention implementation registered with transformers (SDPA for the
output, so the pass's logits are a plain pass's, plus a record of the layer's queries and
keys), switched on for the pass only. A model whose attention does not go through
transformers' attention interface gets a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from relyscope.models.scoring import token_logprobs

IMPLEMENTATION = "relyscope_answer_rows"
# rows of one layer's attention computed at a time for the rollout: [heads, block, L] floats
_ROLLOUT_BLOCK = 256


@dataclass
class _LayerRecord:
    queries: torch.Tensor  # [heads, L, head size], after the rotary embedding
    keys: torch.Tensor  # [kv heads, L, head size], after the rotary embedding
    scaling: float
    window: int | None  # a sliding window's size, or None


class _Capture:
    """Collects each layer's record during one forward pass (handed down as a keyword)."""

    def __init__(self, layers: int) -> None:
        self.records: list[_LayerRecord | None] = [None] * layers

    def record(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor,
               scaling: float | None, window: int | None) -> None:
        if query.shape[0] != 1:
            raise ValueError("the attention pass runs one sequence at a time")
        self.records[int(module.layer_idx)] = _LayerRecord(  # type: ignore[arg-type]
            query[0].detach(), key[0].detach(),
            float(scaling if scaling is not None else query.shape[-1] ** -0.5), window)


def _capturing_sdpa(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                    value: torch.Tensor, attention_mask: torch.Tensor | None,
                    *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
    capture: _Capture | None = kwargs.pop("answer_capture", None)
    if capture is not None:
        capture.record(module, query, key, kwargs.get("scaling"), kwargs.get("sliding_window"))
    return sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)


AttentionInterface.register(IMPLEMENTATION, _capturing_sdpa)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def _weights(record: _LayerRecord, rows: torch.Tensor, length: int | None = None
             ) -> torch.Tensor:
    """Causal softmax attention weights of positions `rows` over the first `length` keys
    (default all; the rows must see no key beyond), per head: [heads, rows, length] (float32,
    as eager attention computes them)."""
    heads = record.queries.shape[0]
    length = record.keys.shape[1] if length is None else length
    keys = record.keys[:, :length].repeat_interleave(heads // record.keys.shape[0], dim=0)
    scores = (record.queries[:, rows] @ keys.transpose(-1, -2)).float() * record.scaling
    columns = torch.arange(length, device=scores.device)
    hidden = columns[None, :] > rows[:, None]
    if record.window is not None:
        hidden |= columns[None, :] <= rows[:, None] - record.window
    return torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)


@dataclass
class AnswerAttention:
    """Of one attention pass: `rows` [layers, heads, A, L], the attention weights of the
    positions `positions` (the A rows that predict the answer's tokens), and `rollout` [A, L],
    those rows of the attention rollout."""

    rows: torch.Tensor
    positions: torch.Tensor
    rollout: torch.Tensor


def _rollout(rows: torch.Tensor, positions: torch.Tensor,
             records: Sequence[_LayerRecord]) -> torch.Tensor:
    """The answer rows of the attention rollout (Abnar & Zuidema) over the head-mean attention
    of every layer: the product of 0.5 A + 0.5 I from the top layer down. [A, L]; costs about
    half an eager attention computation (a block of rows at a time, each over the keys it can
    see)."""
    out = 0.5 * rows[-1].float().mean(0)
    out[torch.arange(len(positions)), positions] += 0.5
    for record in reversed(records[:-1]):
        mixed = 0.5 * out
        length = record.keys.shape[1]
        for start in range(0, length, _ROLLOUT_BLOCK):
            end = min(start + _ROLLOUT_BLOCK, length)
            block = torch.arange(start, end, device=out.device)
            # causal: rows before `end` see only the first `end` keys
            mixed[:, :end] += 0.5 * out[:, block] @ _weights(record, block, end).mean(0)
        out = mixed
    return out


@torch.inference_mode()
def answer_attention(model: nn.Module, input_ids: Sequence[int], positions: Sequence[int],
                     target_len: int = 0) -> tuple[AnswerAttention, torch.Tensor | None]:
    """One forward pass of `input_ids` (the caller switches on IMPLEMENTATION): the attention
    rows of `positions` and their rollout and, with `target_len` > 0, the log-prob of each of
    the last `target_len` tokens from the same pass (CPU float32 [target_len])."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(input_ids)], device=device)
    capture = _Capture(int(model.config.num_hidden_layers))
    out = model(input_ids=ids, logits_to_keep=target_len + 1, answer_capture=capture)
    records = [r for r in capture.records if r is not None]
    if len(records) != len(capture.records):
        raise TypeError(f"the attention pass records {len(records)} of "
                        f"{len(capture.records)} layers: it needs a model whose attention "
                        "goes through transformers' AttentionInterface")
    rows = torch.tensor(list(positions), dtype=torch.long, device=device)
    maps = torch.stack([_weights(record, rows) for record in records])
    # computed here, inside the pass the stop check priced, not later in a method; the
    # queries and keys are dropped with the capture
    attention = AnswerAttention(maps, rows, _rollout(maps, rows, records))
    if target_len <= 0:
        return attention, None
    logprobs = token_logprobs(out.logits[:, :-1], ids[:, -target_len:])[0]
    return attention, logprobs.float().cpu()
