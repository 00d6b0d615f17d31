"""Batched, prefix-shared, target-only scoring equals plain one-at-a-time scoring."""

import pytest
import torch

from relyscope.models import CausalLM, ScoringOptions, Variant
from relyscope.models.hooks import decoder_layers, forward_hooks, token_embedding
from tests.conftest import zelk_case

NAIVE = ScoringOptions(layout="batch", reuse_prefix=False, target_only_logits=False,
                       max_batch_size=1)


def _variants(lm: CausalLM):
    renderer = lm.renderer(zelk_case())
    units = [u.id for u in renderer.units]
    variants = [Variant(), Variant.without(units[:2]), Variant.without(units[-2:]),
                Variant.replacing({"d2": "..."})]
    variants += [Variant.without([u]) for u in units]
    return [renderer.render(v) for v in variants]


def _naive_scores(lm: CausalLM, rendered):
    plain = CausalLM(lm.model, lm.tokenizer, model_id=lm.info.id, revision="naive",
                     options=NAIVE)
    plain.scorer.cache = None
    return plain.score(rendered)


@pytest.mark.real_model
def test_batched_prefix_reused_scores_equal_plain_scores_on_the_real_model(real_lm):
    rendered = _variants(real_lm)
    fast = CausalLM(real_lm.model, real_lm.tokenizer, model_id="x", revision="fast",
                    options=ScoringOptions(max_batch_size=4))
    got = fast.score(rendered)
    want = _naive_scores(real_lm, rendered)
    assert fast.cost.model_calls < len(rendered)  # really batched, prefix ran once
    for g, w in zip(got, want, strict=True):
        assert len(g.token_logprobs) == len(w.token_logprobs)
        pairs = zip(g.token_logprobs, w.token_logprobs, strict=True)
        assert max(abs(a - b) for a, b in pairs) < 1e-4
        assert abs(g.total - w.total) < 1e-4


def test_batched_scores_equal_plain_scores_on_a_tiny_model(tiny_lm):
    rendered = _variants(tiny_lm)
    got = tiny_lm.score(rendered)
    want = _naive_scores(tiny_lm, rendered)
    for g, w in zip(got, want, strict=True):
        assert abs(g.total - w.total) < 1e-4


def test_cache_serves_repeats_without_forward_passes(tiny_lm):
    rendered = _variants(tiny_lm)
    lm = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="t", revision="cache-test")
    first = lm.score(rendered)
    passes = lm.cost.forward_passes
    second = lm.score(rendered)
    assert lm.cost.forward_passes == passes
    assert lm.cost.cache_hits == len(rendered)
    assert [a.total for a in first] == [b.total for b in second]


def test_prefix_cap_is_respected(tiny_lm):
    rendered = _variants(tiny_lm)
    lm = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="t", revision="cap")
    lm.score(rendered, max_prefix=10)
    # prefix of 10 tokens ran once; every other token ran in the batches
    total_suffix = sum(len(r.input_ids) - 10 for r in rendered)
    assert lm.cost.tokens == 10 + total_suffix


@pytest.mark.real_model
def test_a_hook_that_edits_nothing_gives_identical_logits(real_lm):
    ids = torch.tensor([list(_variants(real_lm)[0].input_ids)])
    with torch.inference_mode():
        before = real_lm.model(input_ids=ids).logits
        identity = [(layer, lambda m, i, o: o) for layer in decoder_layers(real_lm.model)]
        identity.append((token_embedding(real_lm.model), lambda m, i, o: o.clone()))
        with forward_hooks(identity):
            during = real_lm.model(input_ids=ids).logits
        after = real_lm.model(input_ids=ids).logits
    assert torch.equal(before, during)
    assert torch.equal(before, after)


def test_hook_resolver_knows_the_common_layouts():
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    neox = GPTNeoXForCausalLM(GPTNeoXConfig(num_hidden_layers=3, hidden_size=32,
                                            num_attention_heads=2, intermediate_size=64,
                                            vocab_size=100))
    assert decoder_layers(gpt2) is gpt2.transformer.h
    assert len(decoder_layers(neox)) == 3
    with pytest.raises(TypeError, match="decoder layers"):
        decoder_layers(torch.nn.Linear(2, 2))


def test_a_case_over_the_context_is_refused(tiny_lm):
    case = zelk_case(answer="word " * 2100)
    with pytest.raises(ValueError, match="over the model's context"):
        tiny_lm.score([tiny_lm.renderer(case).render()])
