"""Per-head attention features of the learned attributor (AT2's idea: one weight per head).

From one attention pass over the full prompt + answer: for each answer row (the rows that
predict answer tokens), each layer and each head, the attention mass that went to each unit's
tokens, with the first SINK_TOKENS key columns (attention sinks) zeroed and every row
renormalised, as the provenance method does. Summed over rows, a unit's feature vector has
one entry per (layer, head); the learned weights map it to an estimated drop in the answer's
logit-scaled probability when the unit is removed. Kept per row too, so a claim's rows can be
summed alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from relyscope.audits.provenance import without_sinks
from relyscope.models import Rendered


def row_features(answer_rows: torch.Tensor, rendered: Rendered,
                 unit_ids: Sequence[str]) -> np.ndarray:
    """Per answer row, unit and head: attention mass [A, U, layers * heads] (float32), from
    the answer rows' attention [layers, heads, A, L] (`AnswerAttention.rows`)."""
    spans = [rendered.unit_token_spans.get(uid, (0, 0)) for uid in unit_ids]
    per_layer = []
    for layer in answer_rows:  # [H, A, L]
        picked = without_sinks(layer.float())
        masses = torch.stack([picked[:, :, a:b].sum(-1) for a, b in spans], dim=-1)  # [H, A, U]
        per_layer.append(masses.permute(1, 2, 0))  # [A, U, H]
    return torch.cat(per_layer, dim=-1).cpu().numpy().astype(np.float32)


def unit_features(rows: np.ndarray, token_span: tuple[int, int] | None = None) -> np.ndarray:
    """[U, F]: the rows' features summed over the answer (or over a claim's token span)."""
    start, end = token_span if token_span is not None else (0, rows.shape[0])
    return rows[start:end].sum(0)
