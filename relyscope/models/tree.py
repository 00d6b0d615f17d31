"""Token-trie scoring: every distinct token prefix among the variants runs exactly once.

Ablation variants of one case share most of their tokens, but not as one common prefix:
dropping source 2 changes everything after it, while every mask that keeps sources 1 and 2
shares their tokens. Merged into a trie, the variants' sequences hold each distinct prefix
once. The trie's tokens are laid out in depth-first order and run as one sequence per model
call, in chunks of up to `chunk_tokens`: each token attends only to its ancestors (a 4D
boolean mask) and takes its depth as position, so it computes exactly what it would in its
own variant's forward pass. Between chunks the KV cache keeps only the path to the next
chunk's first token (in depth-first order nothing else is an ancestor of a token still to
run). No padding, no prefix runs twice, and the matmuls are chunk-sized, not variant-sized.

The same idea is tree attention in speculative decoding (SpecInfer, Medusa); here it scores
teacher-forced targets instead of drafting tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from relyscope.errors import ScoringStopped, Stop

_TIMED_TOKENS = 64  # calls at least this long measure the cost per token
# given the measured seconds per token (None before any), the most tokens the next model
# call may run, or None for no cap (Budget.call_tokens: a deadline's or a cancel check's)
CallTokens = Callable[[float | None], "int | None"]


@dataclass(frozen=True)
class TokenTrie:
    """The variants' token sequences merged into a trie, nodes in depth-first order.

    `subtree_end[j]` is one past the last node of j's subtree, so node j is an ancestor of
    (or is) node q exactly when ``j <= q < subtree_end[j]``.
    """

    tokens: list[int]
    depth: list[int]
    parent: list[int]
    subtree_end: list[int]
    paths: list[list[int]]  # per sequence, the node of each of its tokens

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> TokenTrie:
        """Insert the sequences in sorted order: each then shares with the trie exactly its
        common prefix with the one before it, and new nodes come out in depth-first order."""
        tokens: list[int] = []
        depth: list[int] = []
        parent: list[int] = []
        paths: list[list[int]] = [[] for _ in sequences]
        path: list[int] = []
        previous: Sequence[int] = ()
        for index in sorted(range(len(sequences)), key=lambda i: tuple(sequences[i])):
            ids = sequences[index]
            shared = _common_prefix(previous, ids)
            del path[shared:]
            for position in range(shared, len(ids)):
                path.append(len(tokens))
                tokens.append(ids[position])
                depth.append(position)
                parent.append(path[-2] if len(path) > 1 else -1)
            paths[index] = list(path)
            previous = ids
        return cls(tokens, depth, parent, _subtree_ends(depth), paths)

    def __len__(self) -> int:
        return len(self.tokens)

    def ancestors(self, node: int) -> list[int]:
        """The nodes above `node`, root first."""
        chain = []
        node = self.parent[node]
        while node >= 0:
            chain.append(node)
            node = self.parent[node]
        return chain[::-1]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b):  # noqa: B905 - lengths differ by design
        if x != y:
            break
        length += 1
    return length


def _subtree_ends(depth: list[int]) -> list[int]:
    """In depth-first order a subtree ends where the next node at the same depth or above
    starts."""
    ends = [len(depth)] * len(depth)
    open_nodes: list[int] = []
    for node, d in enumerate(depth):
        while open_nodes and depth[open_nodes[-1]] >= d:
            ends[open_nodes.pop()] = node
        open_nodes.append(node)
    return ends


def supports_tree_layout(model: PreTrainedModel) -> bool:
    """The layout needs a custom 4D mask honoured as given and a plain growing KV cache that
    can be compacted; sliding-window and quantised caches, and flash attention (no arbitrary
    masks), are left to the padded-batch layout."""
    if model.config._attn_implementation not in ("sdpa", "eager"):
        return False
    cache = DynamicCache(config=model.config)
    return all(type(layer) is DynamicLayer for layer in cache.layers)


class TrieEvaluator:
    """Runs a TokenTrie through a causal LM and returns each sequence's target log-probs."""

    def __init__(self, model: PreTrainedModel, chunk_tokens: int, *,
                 cache_kw: str = "past_key_values") -> None:
        self.model = model
        self.cache_kw = cache_kw  # the forward() argument that takes the KV cache
        self.chunk_tokens = max(1, chunk_tokens)
        self.model_calls = 0
        # checked before every model call with the seconds it is expected to take
        self.stop: Stop | None = None
        self.seconds_per_token: float | None = None  # measured on each call, seeds the first
        # the most tokens the next call may run, given the measured cost per token (a
        # deadline's or a cancel check's cap, Budget.call_tokens); None: chunk_tokens
        self.call_tokens: CallTokens | None = None
        self._measured = False  # whether a call of this evaluator measured the cost per token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def target_logprobs(self, trie: TokenTrie, target_lens: Sequence[int]
                        ) -> list[list[float]]:
        """Log-probs of each sequence's last `target_lens[i]` tokens, each given all before it."""
        # (node whose logits predict, token predicted) for every target token of every sequence
        wanted: dict[tuple[int, int], int] = {}
        slots: list[list[int]] = []
        for path, target_len in zip(trie.paths, target_lens, strict=True):
            row = []
            for k in range(len(path) - target_len, len(path)):
                pair = (path[k - 1], trie.tokens[path[k]])
                row.append(wanted.setdefault(pair, len(wanted)))
            slots.append(row)
        by_node: dict[int, list[tuple[int, int]]] = {}
        for (node, token), slot in wanted.items():
            by_node.setdefault(node, []).append((token, slot))
        values = torch.empty(len(wanted), dtype=torch.float32)
        filled = torch.zeros(len(wanted), dtype=torch.bool)

        ends = torch.tensor(trie.subtree_end, device=self.device)
        cache = DynamicCache(config=self.model.config)
        live: list[int] = []  # the nodes whose keys and values the cache holds, in its order
        start = 0
        while start < len(trie):
            stop = min(start + self._chunk(), len(trie))
            self._check_stop(stop - start, slots, values, filled)
            started = time.perf_counter()
            keys = torch.tensor(live + list(range(start, stop)), device=self.device)
            queries = torch.arange(start, stop, device=self.device)
            visible = ((keys[None, :] <= queries[:, None])
                       & (queries[:, None] < ends[keys][None, :]))
            keep = [n for n in range(start, stop) if n in by_node]
            out = self.model(
                input_ids=torch.tensor([trie.tokens[start:stop]], device=self.device),
                position_ids=torch.tensor([trie.depth[start:stop]], device=self.device),
                attention_mask=self._mask(visible),
                use_cache=True, **{self.cache_kw: cache},
                logits_to_keep=torch.tensor([n - start for n in keep] or [0],
                                            device=self.device))
            self.model_calls += 1
            if keep:  # pick the wanted entries on the model's device, copy only those
                picks = [(row, token, slot) for row, node in enumerate(keep)
                         for token, slot in by_node[node]]
                rows, tokens, slots_here = (list(column) for column in zip(*picks, strict=True))
                logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
                values[slots_here] = logprobs[rows, tokens].cpu()
                filled[slots_here] = True
            if stop - start >= _TIMED_TOKENS:  # a short call is mostly fixed overhead
                self.seconds_per_token = (time.perf_counter() - started) / (stop - start)
                self._measured = True
            if stop < len(trie):
                live = self._compact(cache, live + list(range(start, stop)),
                                     trie.ancestors(stop))
            start = stop
        return [[float(values[s]) for s in row] for row in slots]

    def _chunk(self) -> int:
        """Tokens for the next call: `chunk_tokens`, or fewer when `call_tokens` caps it
        (re-asked before every call with the latest measured cost per token); under a cap
        the first call of an evaluation is short, so the cost it was sized by is this call's
        own. Any chunking scores the same: a boundary only moves which call runs a token."""
        cap = self.call_tokens(self.seconds_per_token) if self.call_tokens else None
        if cap is None:
            return self.chunk_tokens
        if not self._measured:  # the cost per token may be stale (load moves): measure first
            cap = min(cap, _TIMED_TOKENS)
        return max(1, min(self.chunk_tokens, cap))

    def _check_stop(self, tokens: int, slots: list[list[int]], values: torch.Tensor,
                    filled: torch.Tensor) -> None:
        """ScoringStopped (with every sequence already complete) when the stop check says
        the next call, of `tokens` tokens, must not start."""
        if self.stop is None:
            return
        reason = self.stop(tokens * (self.seconds_per_token or 0.0))
        if reason is None:
            return
        done = {i: [float(values[s]) for s in row] for i, row in enumerate(slots)
                if bool(filled[row].all())}
        raise ScoringStopped(reason, done)

    def _mask(self, visible: torch.Tensor) -> torch.Tensor:
        """The 4D mask as the attention implementation reads it: SDPA takes booleans (True
        attends); eager attention adds the mask to its scores, so it gets 0 / -inf floats."""
        visible = visible[None, None]
        if self.model.config._attn_implementation == "sdpa":
            return visible
        dtype = next(self.model.parameters()).dtype
        return torch.zeros(visible.shape, dtype=dtype, device=self.device).masked_fill(
            ~visible, torch.finfo(dtype).min)

    def _compact(self, cache: DynamicCache, held: list[int], needed: list[int]) -> list[int]:
        """Keep only `needed` (a subset of `held`) in the cache, in that order."""
        position = {node: i for i, node in enumerate(held)}
        index = torch.tensor([position[n] for n in needed], dtype=torch.long,
                             device=self.device)
        for layer in cache.layers:
            layer.keys = layer.keys.index_select(-2, index)
            layer.values = layer.values.index_select(-2, index)
        return list(needed)
