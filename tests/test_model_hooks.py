"""Hooks are the backend's API: hooked runs agree with plain scoring, count their passes,
and make every tensor on the model's device and in its dtype."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from relyscope.audits import run_audit
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, Edits, Variant, answer_attention
from relyscope.models.hooks import attention_maps
from relyscope.models.scoring import MemoryScoreCache
from tests.conftest import zelk_case

AUDITS = Path(__file__).resolve().parents[1] / "relyscope" / "audits"


@pytest.mark.real_model
def test_a_hooked_run_without_edits_equals_plain_scoring(real_lm):
    renderer = real_lm.renderer(zelk_case())
    variants = [renderer.render(), renderer.render(Variant.without(["d1"])),
                renderer.render(Variant.without(["d0", "d2", "call_1"]))]
    lm = CausalLM(real_lm.model, real_lm.tokenizer, model_id="x", revision="hooks-plain")
    plain = [s.total for s in lm.score(variants)]
    before = lm.cost.forward_passes
    hooked = [lm.edited_logprobs(r.input_ids, len(r.target_ids)) for r in variants]
    assert lm.cost.forward_passes - before == len(variants)  # one row each
    for value, expected in zip(hooked, plain, strict=True):
        assert value.shape == (1,)
        assert float(value[0]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.real_model
def test_restoring_clean_states_on_a_clean_run_changes_nothing_and_noise_does(real_lm):
    rendered = real_lm.renderer(zelk_case()).render()
    span = rendered.unit_token_spans["d1"]
    ids, target = rendered.input_ids, len(rendered.target_ids)
    clean = float(real_lm.edited_logprobs(ids, target)[0])
    states = real_lm.clean_span_states(ids, span)
    assert len(states) == real_lm.num_layers == real_lm.info.num_layers
    restored = real_lm.edited_logprobs(ids, target, Edits(
        restore={layer: (span, states[layer]) for layer in range(real_lm.num_layers)}))
    assert float(restored[0]) == pytest.approx(clean, abs=1e-4)
    noise = real_lm.embedding_noise(3, span[1] - span[0], 3 * real_lm.embedding_std(),
                                    real_lm.noise_generator(0))
    before = real_lm.cost.forward_passes
    noised = real_lm.edited_logprobs(ids, target, Edits(noise={span: noise}))
    assert real_lm.cost.forward_passes - before == 3
    assert noised.shape == (3,) and len(set(noised.tolist())) == 3
    assert float(noised.mean()) < clean - 1.0  # the planted fact's span, corrupted


def _eager_rollout_rows(per_layer: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The rollout rows straight from full maps: rows of the product of the row-normalised
    0.5 A + 0.5 I, from the top layer down."""
    eye = torch.eye(per_layer.shape[-1])
    mixed = [(0.5 * layer + 0.5 * eye) / (0.5 * layer + 0.5 * eye).sum(-1, keepdim=True)
             for layer in per_layer]
    out = mixed[-1][rows]
    for layer in reversed(mixed[:-1]):
        out = out @ layer
    return out


def test_the_attention_pass_keeps_the_answer_rows_of_the_eager_maps_and_their_rollout(
        tiny_lm, monkeypatch):
    """The rows it keeps (per layer and head) and the rollout it computes from the pass's
    queries and keys equal what eager attention's full [heads, L, L] maps give, within float
    error; it counts one pass and leaves the model's attention as it was."""
    rendered = tiny_lm.renderer(zelk_case()).render()
    positions = rendered.target_predicting_positions
    before = tiny_lm.cost.forward_passes
    attention, answer = tiny_lm.attention_pass(rendered.input_ids, positions)
    assert answer is None  # no target asked for
    assert tiny_lm.cost.forward_passes - before == 1
    assert tiny_lm.model.config._attn_implementation == "sdpa"  # switched back
    with tiny_lm.eager_attention():
        maps, _ = attention_maps(tiny_lm.model, rendered.input_ids)
    rows = torch.tensor(list(positions))
    heads = tiny_lm.model.config.num_attention_heads
    length = len(rendered.input_ids)
    assert attention.rows.shape == (tiny_lm.num_layers, heads, len(rows), length)
    want = torch.stack([layer[:, rows].float() for layer in maps])
    assert torch.allclose(attention.rows, want, atol=1e-5)
    assert torch.allclose(attention.rows.sum(-1), torch.ones(want.shape[:-1]), atol=1e-4)
    assert float(attention.rows[..., 0, rows[0] + 1:].abs().max()) == 0.0  # causal
    eager_rollout = _eager_rollout_rows(torch.stack([m.float().mean(0) for m in maps]), rows)
    assert torch.allclose(attention.rollout, eager_rollout, atol=1e-5)
    assert not torch.allclose(attention.rollout, attention.rows[-1].mean(0), atol=1e-3)
    monkeypatch.setattr(answer_attention, "_ROLLOUT_BLOCK", 7)  # many blocks, a ragged last
    blocked, _ = tiny_lm.attention_pass(rendered.input_ids, positions)
    assert length % 7 and torch.allclose(blocked.rollout, eager_rollout, atol=1e-5)


def test_the_attention_pass_scores_the_answer_as_a_plain_pass_does(tiny_lm):
    """The answer's per-token log-probs from the attention pass equal the batched scorer's
    within 1e-4 (float32)."""
    rendered = tiny_lm.renderer(zelk_case()).render()
    target = len(rendered.target_ids)
    _rows, answer = tiny_lm.attention_pass(rendered.input_ids,
                                           rendered.target_predicting_positions, target)
    assert answer is not None and len(answer.token_logprobs) == target
    tiny_lm.scorer.cache = MemoryScoreCache()
    plain = tiny_lm.score([rendered])[0]
    assert np.allclose(answer.token_logprobs, plain.token_logprobs, atol=1e-4)


@pytest.fixture(scope="module", params=[torch.float64, torch.bfloat16], ids=str)
def typed_model(request, tiny_lm) -> torch.nn.Module:
    return copy.deepcopy(tiny_lm.model).to(request.param)


@pytest.fixture
def typed_lm(typed_model, tiny_lm) -> CausalLM:
    """The tiny model in another dtype, with fresh caches for each test."""
    return CausalLM(typed_model, tiny_lm.tokenizer, model_id="tiny",
                    revision=str(typed_model.dtype))


def test_noise_and_states_follow_the_models_device_and_dtype(typed_lm):
    weight = typed_lm.model.get_input_embeddings().weight
    noise = typed_lm.embedding_noise(2, 5, 0.5, typed_lm.noise_generator(7))
    assert noise.dtype == weight.dtype and noise.device == weight.device
    assert noise.shape == (2, 5, weight.shape[1])
    again = typed_lm.embedding_noise(2, 5, 0.5, typed_lm.noise_generator(7))
    assert torch.equal(noise, again)  # seeded
    rendered = typed_lm.renderer(zelk_case()).render()
    span = rendered.unit_token_spans["d1"]
    states = typed_lm.clean_span_states(rendered.input_ids, span)
    assert {s.dtype for s in states} == {weight.dtype}
    before = typed_lm.cost.forward_passes
    assert typed_lm.clean_span_states(rendered.input_ids, span) is states  # cached: no pass
    assert typed_lm.cost.forward_passes == before
    assert states[0].shape == (span[1] - span[0], weight.shape[1])
    values = typed_lm.edited_logprobs(rendered.input_ids, len(rendered.target_ids), Edits(
        noise={span: typed_lm.embedding_noise(2, span[1] - span[0], 0.5,
                                              typed_lm.noise_generator(0))},
        restore={0: (span, states[0])}))
    assert values.dtype == torch.float32 and values.shape == (2,)
    assert torch.isfinite(values).all()


def test_tracing_runs_in_the_models_dtype(typed_lm):
    config = AuditConfig(methods=("attention", "tracing"), method_settings={
        "tracing": {"samples": 2, "top_units": 1, "window": 1}})
    report = run_audit(zelk_case(), typed_lm, config)
    assert not report.errors and not report.partial
    assert report.unit("d1").reliance["tracing"] is not None
    assert len(report.methods["tracing"]["layer_profiles"]) == 1
    # attention 1, tracing: 2 rows x 6 units, 1 clean pass + 2 windows x 2 rows, 6 in-dist
    assert report.cost["per_method"]["tracing"]["forward_passes"] == 12 + 5 + 6
    assert report.cost["per_method"]["attention"]["forward_passes"] == 1


def test_audits_reach_the_model_only_through_the_backend_api():
    for path in AUDITS.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"\blm\.(model|scorer)\b", source), path.name
        assert "register_forward_hook" not in source, path.name
        assert "log_softmax" not in source, path.name
