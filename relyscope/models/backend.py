"""The Hugging Face causal-LM backend: load, render, score variants, generate, hooked passes.

`CausalLM.load()` with no argument gives the packaged SmolLM2-135M-Instruct; any other Hugging
Face causal LM loads from a local folder (or a hub id already in the local cache: nothing is
downloaded here). Scoring runs with the model's fastest attention; the attention pass switches
on, for itself only, SDPA that records the answer rows' attention (models/answer_attention.py).

Audits reach the model only through this class: scoring (`score`, `score_tokens`), the
attention pass, hooked passes with embedding noise and layer restoration, and clean span
states. Each counts its forward passes in `cost`, the one pass counter.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    StoppingCriteria,
    StoppingCriteriaList,
)

from relyscope.case import Case, Granularity
from relyscope.errors import ContextOverflow, ScoringStopped, Stop
from relyscope.models.answer_attention import IMPLEMENTATION as ANSWER_ROWS
from relyscope.models.answer_attention import AnswerAttention, answer_attention
from relyscope.models.gradients import GradientAttribution, GradientMethod, gradient_attribution
from relyscope.models.hooks import (
    Edits,
    Span,
    decoder_layers,
    edited_answer_logprobs,
    gaussian_noise,
    span_states,
    token_embedding,
)
from relyscope.models.knockout import (
    Knockout,
    knockout_answer_logprobs,
    knockout_token_logprobs,
)
from relyscope.models.packaged import DEFAULT_MODEL, packaged_model_dir
from relyscope.models.render import Rendered, Renderer, ToolMode
from relyscope.models.scoring import (
    BatchScorer,
    Cost,
    MemoryScoreCache,
    ScoreCache,
    ScoreItem,
    ScoringOptions,
    TargetScore,
)
from relyscope.models.tree import CallTokens

_SPAN_STATES_KEPT = 16  # clean span states kept for reuse (tracing's top units)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    revision: str
    path: str
    num_layers: int
    max_positions: int | None
    dtype: str
    device: str


class CausalLM:
    """A causal LM with its tokenizer, a batched scorer and a cost counter."""

    def __init__(self, model: PreTrainedModel, tokenizer, *, model_id: str, revision: str,
                 path: str = "", cache: ScoreCache | None = None,
                 options: ScoringOptions | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.info = ModelInfo(
            id=model_id, revision=revision, path=path,
            num_layers=model.config.num_hidden_layers,
            max_positions=getattr(model.config, "max_position_embeddings", None),
            dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
            device=str(next(model.parameters()).device))
        # scores differ by dtype (bfloat16 keeps about 3 significant digits): one cache
        # namespace per model and dtype
        namespace = f"{model_id}@{revision}:{self.info.dtype}"
        self.scorer = BatchScorer(model, pad_token_id=pad, namespace=namespace,
                                  cache=cache if cache is not None else MemoryScoreCache(),
                                  options=options)
        self._span_states: OrderedDict[tuple[tuple[int, ...], Span], list[torch.Tensor]] = (
            OrderedDict())

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_path: str | None = None, *, device: str = "cpu",
             dtype: torch.dtype | str = torch.float32, cache: ScoreCache | None = None,
             options: ScoringOptions | None = None) -> CausalLM:
        dtype = _torch_dtype(dtype)
        if name_or_path in (None, "", DEFAULT_MODEL):
            folder, revision = packaged_model_dir()
            model_id = DEFAULT_MODEL
        else:
            folder = Path(name_or_path).expanduser()
            if not folder.exists():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                folder = Path(name_or_path)  # a hub id: only the local HF cache can serve it
            revision = _folder_revision(folder)
            model_id = str(name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
        except OSError as err:
            raise FileNotFoundError(f"cannot load model {name_or_path!r}: {err}") from err
        model.to(device)
        return cls(model, tokenizer, model_id=model_id, revision=revision, path=str(folder),
                   cache=cache, options=options)

    # -- rendering and scoring ------------------------------------------------------------

    # -- stopping between model calls (deadlines, cancellation) -----------------------------

    @contextmanager
    def stopping(self, stop: Stop | None, call_tokens: CallTokens | None = None
                 ) -> Iterator[None]:
        """Every model call in the block first asks `stop(expected seconds)`; a reason
        raises ScoringStopped (scoring calls keep what they scored in it). `call_tokens`
        (given the measured seconds per token) caps the tokens of each scoring call, so
        chunks shrink to what the time left affords instead of one chunk overrunning."""
        previous = self.scorer.stop, self.scorer.call_tokens
        self.scorer.stop, self.scorer.call_tokens = stop, call_tokens
        try:
            yield
        finally:
            self.scorer.stop, self.scorer.call_tokens = previous

    @property
    def seconds_per_token(self) -> float | None:
        """The last measured cost of one token through the model (None before any call)."""
        return self.scorer.seconds_per_token

    def calibrate(self, tokens: int = 64) -> float:
        """Measure the cost per token with one short pass (when nothing measured it yet), so a
        deadline can size the first call of an audit."""
        if self.scorer.seconds_per_token is None:
            ids = torch.arange(tokens, device=self.device).unsqueeze(0) % 1000 + 10
            with torch.inference_mode():
                self.model(input_ids=ids[:, :8], logits_to_keep=1)  # the first call's setup
                started = time.perf_counter()
                self.model(input_ids=ids, logits_to_keep=1)
            self.scorer.seconds_per_token = (time.perf_counter() - started) / tokens
        return self.scorer.seconds_per_token

    def _check_stop(self, tokens: int) -> None:
        self.scorer.check_stop(tokens)

    def renderer(self, case: Case, *, granularity: Granularity = "source",
                 tool_mode: ToolMode | None = None) -> Renderer:
        return Renderer(self.tokenizer, case, granularity=granularity, tool_mode=tool_mode)

    @property
    def cost(self) -> Cost:
        return self.scorer.cost

    def score(self, rendered: Sequence[Rendered], *, max_prefix: int | None = None
              ) -> list[TargetScore]:
        """Teacher-forced log-probs of each rendering's target given its prompt."""
        self.check_fits(rendered)
        items = [ScoreItem(r.input_ids, len(r.target_ids)) for r in rendered]
        return self.scorer.score(items, max_prefix=max_prefix)

    def score_tokens(self, items: Sequence[ScoreItem]) -> list[TargetScore]:
        """Teacher-forced log-probs of raw token sequences (batched, cached, counted)."""
        return self.scorer.score(items)

    # -- hooked passes ----------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        """Decoder layers a restoration can target."""
        return len(decoder_layers(self.model))

    @property
    def num_heads(self) -> int:
        """Attention (query) heads per decoder layer, the heads a knockout can target."""
        return int(self.model.config.num_attention_heads)

    def attention_pass(self, input_ids: Sequence[int], positions: Sequence[int],
                       target_len: int = 0) -> tuple[AnswerAttention, TargetScore | None]:
        """The attention of rows `positions` (per layer and head) of one sequence and those
        rows' attention rollout, and with `target_len` > 0 the score of its last
        `target_len` tokens from the same pass (SDPA: a plain pass's logits, but not the
        batched scorer's bit for bit, so it is not put in the score cache); counts one pass."""
        # priced as two passes: the pass plus the rollout measured 1.5x-2.4x a pass alone at
        # 1.8k-7.2k tokens (python -m bench.attention_pass); the old eager pass, 3x at 1.8k
        self._check_stop(2 * len(input_ids))
        with self.attention_implementation(ANSWER_ROWS):
            attention, logprobs = answer_attention(self.model, input_ids, positions, target_len)
        self.cost.forward_passes += 1
        if logprobs is None:
            return attention, None
        return attention, TargetScore(tuple(float(x) for x in logprobs))

    def edited_logprobs(self, input_ids: Sequence[int], target_len: int,
                        edits: Edits | None = None) -> torch.Tensor:
        """Answer log-prob (sum over the last `target_len` tokens) per row under embedding
        noise and layer-restore edits; a CPU float32 tensor [rows]. Counts its rows."""
        edits = edits or Edits()
        self._check_stop(edits.rows * len(input_ids))
        values = edited_answer_logprobs(self.model, input_ids, target_len, edits)
        self.cost.forward_passes += edits.rows
        return values

    def clean_span_states(self, input_ids: Sequence[int], span: Span) -> list[torch.Tensor]:
        """Each decoder layer's clean output at the span's positions, cached per sequence and
        span (small: a span's states per layer); a miss counts one pass, a hit none."""
        key = (tuple(input_ids), span)
        states = self._span_states.get(key)
        if states is None:
            self._check_stop(len(input_ids))
            states = span_states(self.model, input_ids, span)
            self.cost.forward_passes += 1
            self._span_states[key] = states
            while len(self._span_states) > _SPAN_STATES_KEPT:
                self._span_states.popitem(last=False)
        else:
            self._span_states.move_to_end(key)
        return states

    def knockout_logprobs(self, input_ids: Sequence[int], target_len: int,
                          knockouts: Sequence[Knockout], *, batch: int = 8) -> torch.Tensor:
        """Answer log-prob (sum over the last `target_len` tokens) with each knockout's
        attention edges removed, one row per knockout; a CPU float32 tensor. Counts its rows."""
        return torch.cat([knockout_answer_logprobs(self.model, input_ids, target_len, group,
                                                   batch=batch)
                          for group in self._knockout_groups(input_ids, knockouts, batch)]
                         or [torch.empty(0)])

    def knockout_token_logprobs(self, input_ids: Sequence[int], target_len: int,
                                knockouts: Sequence[Knockout], *, batch: int = 8
                                ) -> torch.Tensor:
        """`knockout_logprobs` per answer token: [knockouts, target_len]. Counts its rows."""
        return torch.cat([knockout_token_logprobs(self.model, input_ids, target_len, group,
                                                  batch=batch)
                          for group in self._knockout_groups(input_ids, knockouts, batch)]
                         or [torch.empty((0, target_len))])

    def _knockout_groups(self, input_ids: Sequence[int], knockouts: Sequence[Knockout],
                         batch: int) -> Iterator[Sequence[Knockout]]:
        """The knockouts one batch at a time, the stop check before each (passes counted as
        each batch is handed out)."""
        size = max(1, batch)
        for start in range(0, len(knockouts), size):
            group = knockouts[start:start + size]
            self._check_stop(len(group) * len(input_ids))
            self.cost.forward_passes += len(group)
            yield group

    def gradient_attribution(self, input_ids: Sequence[int], target_len: int, *,
                             method: GradientMethod, baseline_positions: Sequence[int] = (),
                             steps: int = 16, batch: int = 8) -> GradientAttribution:
        """Per-token gradient attributions of the answer's log-prob (Captum, on the input
        embeddings); the baseline puts the pad token at `baseline_positions`. Counts each
        forward+backward pass (and the two plain passes of f(input), f(baseline))."""
        self._check_stop(3 * (steps + 2) * len(input_ids))  # backward: about 2x a forward
        result = gradient_attribution(self.model, input_ids, target_len, method=method,
                                      baseline_positions=baseline_positions,
                                      baseline_token=self.scorer.pad_token_id, steps=steps,
                                      batch=batch)
        self.cost.forward_passes += result.passes
        return result

    def embedding_std(self) -> float:
        """The standard deviation of the token-embedding matrix (noise is scaled by it)."""
        return float(token_embedding(self.model).weight.detach().float().std())

    def noise_generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the model's device, for `embedding_noise`."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def embedding_noise(self, rows: int, length: int, std: float,
                        generator: torch.Generator) -> torch.Tensor:
        """Gaussian noise [rows, length, hidden] for the token embeddings of a span, on the
        model's device and in its dtype."""
        embedding = token_embedding(self.model)
        hidden = embedding.weight.shape[1]  # type: ignore[union-attr]
        return gaussian_noise(embedding, (rows, length, hidden), std, generator)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def check_fits(self, rendered: Sequence[Rendered]) -> None:
        limit = self.info.max_positions
        longest = max((len(r.input_ids) for r in rendered), default=0)
        if limit and longest > limit:
            raise ContextOverflow(f"case is {longest} tokens long, over the model's context "
                                  f"of {limit} tokens")

    @torch.inference_mode()
    def generate(self, prompt_ids: Sequence[int], *, max_new_tokens: int = 64) -> str:
        """Greedy continuation of a rendered prompt, stopped at end of turn."""
        ids = torch.tensor([list(prompt_ids)], device=self.model.device)
        stop = [t for t in {self.tokenizer.eos_token_id,
                            self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
                if isinstance(t, int) and t >= 0 and t != self.tokenizer.unk_token_id]
        self._check_stop(len(prompt_ids) + max_new_tokens)
        halted = _Halt(self.scorer.stop, self.scorer.seconds_per_token)
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=max_new_tokens, do_sample=False,
                                  eos_token_id=stop or None, pad_token_id=self.scorer.pad_token_id,
                                  stopping_criteria=StoppingCriteriaList([halted]))
        if halted.reason is not None:
            self.cost.forward_passes += 1
            raise ScoringStopped(halted.reason)
        self.cost.forward_passes += 1
        self.cost.model_calls += out.shape[1] - ids.shape[1]
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    def answer(self, case: Case, *, tool_mode: ToolMode | None = None) -> Case:
        """The case with its answer, generated greedily when the case has none."""
        if case.answer is not None:
            return case
        renderer = self.renderer(case, tool_mode=tool_mode)
        prompt = renderer.render(target=" ").prompt_ids
        text = self.generate(prompt, max_new_tokens=case.decoding.max_new_tokens)
        if not text:
            raise ValueError(f"case {case.id}: the model generated an empty answer")
        return case.with_answer(text)

    @contextmanager
    def attention_implementation(self, name: str) -> Iterator[None]:
        """The model's attention switched to `name` for the block only."""
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation(name)
        try:
            yield
        finally:
            self.model.set_attn_implementation(previous)

    def eager_attention(self) -> AbstractContextManager[None]:
        """Eager attention (which reads a float mask, and can return every weight)."""
        return self.attention_implementation("eager")


class _Halt(StoppingCriteria):
    """Ends a generation when the stop check refuses the next token (a deadline or a
    cancellation); `reason` says why."""

    def __init__(self, stop: Stop | None, seconds_per_token: float | None) -> None:
        self.stop = stop
        self.step = seconds_per_token or 0.0
        self.reason: str | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: object) -> bool:
        if self.stop is not None and self.reason is None:
            self.reason = self.stop(self.step)
        return self.reason is not None


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype: {dtype!r} is not a torch floating-point dtype "
                         "(float32, bfloat16, float16)")
    return value


def _folder_revision(folder: Path) -> str:
    """A stable id of a local model folder's weights: config plus weight file names and sizes."""
    digest = hashlib.sha256()
    if folder.is_dir():
        config = folder / "config.json"
        if config.is_file():
            digest.update(json.dumps(json.loads(config.read_text()), sort_keys=True).encode())
        for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    else:
        digest.update(str(folder).encode())
    return digest.hexdigest()[:16]
