"""Shared fixtures: the real packaged model (loaded once per session) and a tiny random one."""

from __future__ import annotations

import pytest
import torch

from relyscope.case import Case
from relyscope.models import CausalLM

ZELK_SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt."),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel."),
    ("d2", "Copper prices rose sharply in the northern markets last year."),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns."),
    ("d4", "Tidewater lighthouses use rotating lenses to guide ships at night."),
]


def zelk_case(answer: str | None = "The Zelk guild was founded by Anna Roth.", **extra) -> Case:
    data = {
        "id": "zelk",
        "system": "Answer the question in one sentence using the context.",
        "query": "Who founded the Zelk guild?",
        "sources": [{"id": i, "text": t} for i, t in ZELK_SOURCES],
        "tool_calls": [{"id": "call_1", "name": "get_temperature",
                        "arguments": {"city": "Mirel"}, "output": "18 degrees Celsius"}],
        "answer": answer,
    }
    data.update(extra)
    return Case.from_dict(data)


@pytest.fixture(scope="session")
def real_lm() -> CausalLM:
    return CausalLM.load()


@pytest.fixture(scope="session")
def tiny_lm(real_lm: CausalLM) -> CausalLM:
    """A 2-layer randomly initialised Llama sharing the real tokenizer: fast plumbing tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(real_lm.tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    return CausalLM(model, real_lm.tokenizer, model_id="tiny-random-llama", revision="seed0")
