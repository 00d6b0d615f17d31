"""The Hugging Face causal-LM backend: load, render, score variants, generate.

`CausalLM.load()` with no argument gives the packaged SmolLM2-135M-Instruct; any other Hugging
Face causal LM loads from a local folder (or a hub id already in the local cache: nothing is
downloaded here). Scoring runs with the model's fastest attention; eager attention is switched
on only inside `eager_attention()` for the provenance pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from relyscope.case import Case, Granularity
from relyscope.errors import ContextOverflow
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
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=max_new_tokens, do_sample=False,
                                  eos_token_id=stop or None, pad_token_id=self.scorer.pad_token_id)
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
    def eager_attention(self) -> Iterator[None]:
        """Eager attention (which can return attention weights) for the block only."""
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.model.set_attn_implementation(previous)


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
