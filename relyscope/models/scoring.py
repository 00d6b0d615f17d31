"""Batched teacher-forced scoring: log p(target tokens | prompt) for many variants at once.

Three savings over one forward pass per variant:
- the longest token prefix shared by all variants runs once; its KV cache is reused; with
  ``prefix_tree`` the variants are then split by their next token, recursively, and a longer
  prefix shared by a subgroup (say every mask that keeps the first source) extends the cache
  once for that subgroup instead of running once per variant;
- variants run in batches; suffixes are left-padded so every target ends at the same position
  (padding sits between the shared prefix and the suffix, masked out, with explicit positions);
- logits are computed only at the target positions (``logits_to_keep``).

The cost unit is one forward pass over one sequence; the counter also keeps batched model
calls and tokens actually processed.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

import torch
from transformers import PreTrainedModel

from relyscope.errors import ScoringStopped, Stop
from relyscope.models.tree import CallTokens, TokenTrie, TrieEvaluator, supports_tree_layout


@dataclass(frozen=True)
class ScoreItem:
    """A token sequence whose last `target_len` tokens are the scored target."""

    input_ids: tuple[int, ...]
    target_len: int

    def __post_init__(self) -> None:
        if not 0 < self.target_len < len(self.input_ids):
            raise ValueError(f"target_len must be in [1, {len(self.input_ids) - 1}], "
                             f"got {self.target_len}")

    def key(self, namespace: str) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(namespace.encode())
        digest.update(len(self.input_ids).to_bytes(4, "little"))
        digest.update(self.target_len.to_bytes(4, "little"))
        digest.update(b"".join(i.to_bytes(4, "little") for i in self.input_ids))
        return digest.hexdigest()


@dataclass(frozen=True)
class TargetScore:
    token_logprobs: tuple[float, ...]

    @property
    def total(self) -> float:
        return float(sum(self.token_logprobs))

    def tokens(self, start: int, end: int) -> TargetScore:
        """The score of target tokens [start, end) alone (a claim of the answer)."""
        return TargetScore(self.token_logprobs[start:end])

    @property
    def logit_prob(self) -> float:
        """ContextCite's logit-scaled probability of the whole target: log p - log(1 - p)."""
        total = min(self.total, -1e-7)
        return total - math.log(-math.expm1(total))


@dataclass
class Cost:
    forward_passes: int = 0
    model_calls: int = 0
    tokens: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) - getattr(other, k) for k in asdict(self)})

    def snapshot(self) -> Cost:
        return copy.copy(self)


class ScoreCache(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[TargetScore | None]: ...

    def put_many(self, items: dict[str, TargetScore]) -> None: ...


@dataclass
class MemoryScoreCache:
    """In-process LRU cache of target scores, the embedded default."""

    max_entries: int = 200_000
    _data: OrderedDict[str, TargetScore] = field(default_factory=OrderedDict)

    def get_many(self, keys: Sequence[str]) -> list[TargetScore | None]:
        found = []
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            found.append(value)
        return found

    def put_many(self, items: dict[str, TargetScore]) -> None:
        self._data.update(items)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)


@dataclass
class ScoringOptions:
    # "tree": the variants' token trie runs once, depth-first, in chunks (models/tree.py);
    # "batch": padded batches over a shared prefix (the options below apply to it)
    layout: Literal["tree", "batch"] = "tree"
    tree_chunk_tokens: int = 512
    reuse_prefix: bool = True
    target_only_logits: bool = True
    max_batch_tokens: int = 6144
    max_batch_size: int = 32
    min_shared_prefix: int = 8
    prefix_tree: bool = True  # also share prefixes common to subsets of the variants
    min_tree_saving: int = 32  # tokens a subgroup's shared extension must save to be split off
    threads: int | None = None  # torch intra-op threads while scoring (None: leave as set)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position: logits [rows, T, vocab] predict targets [rows, T]
    (log-softmax in float32 whatever the model's dtype)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads (process-wide), restoring the previous setting."""
    previous = torch.get_num_threads()
    if n is not None and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


class BatchScorer:
    """Scores ScoreItems on one causal LM, batched, prefix-shared, cached."""

    def __init__(self, model: PreTrainedModel, *, pad_token_id: int, namespace: str,
                 cache: ScoreCache | None = None, options: ScoringOptions | None = None) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.namespace = namespace
        self.cache = cache
        self.options = options or ScoringOptions()
        self.cost = Cost()
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._tree_ok: bool | None = None
        # checked before every model call (CausalLM.stopping sets it for an audit's calls)
        self.stop: Stop | None = None
        # measured seconds per token processed, kept across calls to size the next one
        self.seconds_per_token: float | None = None
        # the most tokens one model call may run by the measured cost per token (a deadline's
        # or a cancel check's cap; CausalLM.stopping sets it with `stop`); None: no cap
        self.call_tokens: CallTokens | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(self, items: Sequence[ScoreItem], *, max_prefix: int | None = None
              ) -> list[TargetScore]:
        """Scores in the order given. `max_prefix` caps the shared prefix (for hooks that must
        see certain positions run in the batch, not in the cached prefix)."""
        started = time.perf_counter()
        keys = [item.key(self.namespace) for item in items]
        results: dict[str, TargetScore] = {}
        if self.cache is not None:
            for key, hit in zip(keys, self.cache.get_many(keys), strict=True):
                if hit is not None:
                    results[key] = hit
        todo: dict[str, ScoreItem] = {}
        for key, item in zip(keys, items, strict=True):
            if key not in results:
                todo.setdefault(key, item)
        self.cost.cache_hits += len(items) - len(todo)
        self.cost.cache_misses += len(todo)
        if todo:
            try:
                computed = self._compute(list(todo.values()), max_prefix)
            except ScoringStopped as stopped:  # keep (and cache) what was scored
                self._keep_partial(keys, list(todo), results, stopped, started)
                raise
            fresh = dict(zip(todo, computed, strict=True))
            results.update(fresh)
            if self.cache is not None:
                self.cache.put_many(fresh)
        self.cost.seconds += time.perf_counter() - started
        return [results[key] for key in keys]

    def _keep_partial(self, keys: list[str], todo_keys: list[str],
                      results: dict[str, TargetScore], stopped: ScoringStopped,
                      started: float) -> None:
        """Turn a stop inside `_compute` (done: index into todo) into one over the items
        asked for (done: index into `keys`), caching the fresh scores."""
        fresh = {todo_keys[i]: score for i, score in stopped.done.items()}
        results.update(fresh)
        if self.cache is not None and fresh:
            self.cache.put_many(fresh)
        stopped.done = {i: results[key] for i, key in enumerate(keys) if key in results}
        self.cost.seconds += time.perf_counter() - started

    def check_stop(self, tokens: int) -> None:
        """ScoringStopped when the stop check refuses a call over `tokens` tokens now."""
        if self.stop is None:
            return
        reason = self.stop(tokens * (self.seconds_per_token or 0.0))
        if reason is not None:
            raise ScoringStopped(reason)

    def _timed(self, tokens: int, started: float) -> None:
        if tokens >= 64:  # a short call is mostly fixed overhead
            self.seconds_per_token = (time.perf_counter() - started) / tokens

    # -- the forward passes -----------------------------------------------------------------

    @torch.inference_mode()
    def _compute(self, items: list[ScoreItem], max_prefix: int | None) -> list[TargetScore]:
        with _threads(self.options.threads):
            if self._tree_layout(max_prefix):
                return self._compute_tree(items)
            scores: list[TargetScore | None] = [None] * len(items)
            try:
                self._compute_group(items, list(range(len(items))), 0, None, max_prefix,
                                    scores)
            except ScoringStopped as stopped:
                stopped.done = {i: s for i, s in enumerate(scores) if s is not None}
                raise
        return scores  # type: ignore[return-value]

    def _tree_layout(self, max_prefix: int | None) -> bool:
        if self.options.layout != "tree" or max_prefix is not None:
            return False
        if self._tree_ok is None:
            self._tree_ok = supports_tree_layout(self.model)
        return self._tree_ok

    def _compute_tree(self, items: list[ScoreItem]) -> list[TargetScore]:
        trie = TokenTrie.build([item.input_ids for item in items])
        evaluator = TrieEvaluator(self.model, self.options.tree_chunk_tokens,
                                  cache_kw=self._cache_kw)
        evaluator.stop, evaluator.seconds_per_token = self.stop, self.seconds_per_token
        evaluator.call_tokens = self.call_tokens
        try:
            logprobs = evaluator.target_logprobs(trie, [item.target_len for item in items])
        except ScoringStopped as stopped:
            self.cost.model_calls += evaluator.model_calls
            self.cost.forward_passes += len(stopped.done)
            self.seconds_per_token = evaluator.seconds_per_token
            stopped.done = {i: TargetScore(tuple(row)) for i, row in stopped.done.items()}
            raise
        self.seconds_per_token = evaluator.seconds_per_token
        self.cost.model_calls += evaluator.model_calls
        self.cost.forward_passes += len(items)
        self.cost.tokens += len(trie)
        return [TargetScore(tuple(row)) for row in logprobs]

    def _compute_group(self, items: list[ScoreItem], group: list[int], prefix_len: int,
                       prefix_cache: object, max_prefix: int | None,
                       scores: list[TargetScore | None]) -> None:
        """Score `group` (items sharing their first `prefix_len` tokens, whose KV cache is
        `prefix_cache`). With `prefix_tree`, subgroups that share a longer prefix extend the
        cache once and recurse, so a token prefix common to several variants runs once."""
        members = [items[i] for i in group]
        shared = self._shared_prefix_len(members, max_prefix)
        if shared > prefix_len and (prefix_len or shared >= self.options.min_shared_prefix):
            prefix_cache = self._extend(members[0].input_ids, prefix_len, shared, prefix_cache)
            prefix_len = shared
        rest = group
        if self.options.reuse_prefix and self.options.prefix_tree and len(group) > 2:
            rest = []
            for sub in self._subgroups(items, group, prefix_len, max_prefix):
                if len(sub) > 1 and len(sub) < len(group):
                    self._compute_group(items, sub, prefix_len, prefix_cache, max_prefix, scores)
                else:
                    rest += sub
        order = sorted(rest, key=lambda i: -len(items[i].input_ids))
        for batch in self._batches(order, items, prefix_len):
            batch_items = [items[i] for i in batch]
            for i, score in zip(batch, self._run_batch(batch_items, prefix_len, prefix_cache),
                                strict=True):
                scores[i] = score

    def _subgroups(self, items: list[ScoreItem], group: list[int], prefix_len: int,
                   max_prefix: int | None) -> list[list[int]]:
        """Split by the next token; keep a split only where it saves enough recomputed tokens
        (the extension runs once instead of once per member)."""
        by_token: dict[int, list[int]] = {}
        for i in group:
            item = items[i]
            if prefix_len < len(item.input_ids) - item.target_len - 1:
                by_token.setdefault(item.input_ids[prefix_len], []).append(i)
            else:
                by_token.setdefault(-1 - i, []).append(i)
        out: list[list[int]] = []
        for sub in by_token.values():
            if len(sub) > 1:
                extra = self._shared_prefix_len([items[i] for i in sub], max_prefix) - prefix_len
                if extra * (len(sub) - 1) < self.options.min_tree_saving:
                    out += [[i] for i in sub]
                    continue
            out.append(sub)
        return out

    def _extend(self, ids: tuple[int, ...], start: int, end: int, cache: object) -> object:
        """KV cache of ids[:end], from the cache of ids[:start] (None when start is 0)."""
        kwargs: dict[str, object] = {}
        if cache is not None:
            kwargs[self._cache_kw] = copy.deepcopy(cache)
            kwargs["position_ids"] = torch.arange(start, end, device=self.device).unsqueeze(0)
        chunk = torch.tensor([ids[start:end]], device=self.device)
        self.check_stop(end - start)
        began = time.perf_counter()
        out = self.model(input_ids=chunk, use_cache=True, logits_to_keep=1, **kwargs)
        self._timed(end - start, began)
        self.cost.model_calls += 1
        self.cost.tokens += end - start
        return getattr(out, self._cache_kw)

    def _shared_prefix_len(self, items: list[ScoreItem], max_prefix: int | None) -> int:
        if not self.options.reuse_prefix or len(items) < 2:
            return 0
        first = items[0].input_ids
        limit = min(len(item.input_ids) - item.target_len - 1 for item in items)
        if max_prefix is not None:
            limit = min(limit, max_prefix)
        length = 0
        while length < limit and all(item.input_ids[length] == first[length] for item in items):
            length += 1
        return length

    def _batches(self, order: list[int], items: list[ScoreItem], prefix_len: int
                 ) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        width = 0
        cap = self.call_tokens(self.seconds_per_token) if self.call_tokens else None
        max_tokens = self.options.max_batch_tokens if cap is None else min(
            self.options.max_batch_tokens, cap)
        for index in order:
            length = len(items[index].input_ids) - prefix_len
            width = max(width, length)
            if current and (width * (len(current) + 1) > max_tokens
                            or len(current) >= self.options.max_batch_size):
                batches.append(current)
                current, width = [], length
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def _run_batch(self, items: list[ScoreItem], prefix_len: int, prefix_cache: object
                   ) -> list[TargetScore]:
        suffixes = [item.input_ids[prefix_len:] for item in items]
        width = max(len(s) for s in suffixes)
        rows = len(items)
        input_ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        suffix_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            input_ids[row, width - len(suffix):] = torch.tensor(suffix)
            suffix_mask[row, width - len(suffix):] = 1
        positions = (prefix_len + suffix_mask.cumsum(dim=1) - 1).clamp(min=0)
        kwargs: dict[str, object] = {"position_ids": positions.to(self.device)}
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(rows)  # type: ignore[attr-defined]
            kwargs[self._cache_kw] = cache
            mask = torch.cat([torch.ones((rows, prefix_len), dtype=torch.long), suffix_mask], 1)
        else:
            mask = suffix_mask
        kwargs["attention_mask"] = mask.to(self.device)
        keep = max(item.target_len for item in items) + 1
        if self.options.target_only_logits:
            kwargs["logits_to_keep"] = keep
        self.check_stop(rows * width)
        began = time.perf_counter()
        logits = self.model(input_ids=input_ids.to(self.device),
                            use_cache=prefix_cache is not None, **kwargs).logits[:, -keep:, :]
        self._timed(rows * width, began)
        self.cost.model_calls += 1
        self.cost.forward_passes += rows
        self.cost.tokens += int(suffix_mask.sum())
        targets = input_ids[:, -(keep - 1):].to(self.device)
        picked = token_logprobs(logits[:, :-1, :], targets).cpu()
        return [TargetScore(tuple(picked[row, -item.target_len:].tolist()))
                for row, item in enumerate(items)]
