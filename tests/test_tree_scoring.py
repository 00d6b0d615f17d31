"""Token-trie scoring: each distinct prefix runs once and the scores equal plain scoring."""

import itertools

import pytest
from transformers import MistralConfig, MistralForCausalLM

from relyscope.models import CausalLM, ScoringOptions, Variant
from relyscope.models.scoring import ScoreItem
from relyscope.models.tree import TokenTrie, supports_tree_layout
from tests.conftest import zelk_case

PLAIN = ScoringOptions(layout="batch", reuse_prefix=False, target_only_logits=False,
                       max_batch_size=1)
SEQUENCES = [(1, 2, 3, 4), (1, 2, 5), (1, 2, 3, 6, 7), (8, 9), (1, 2, 3), (8, 9, 1)]
# The README's claim: trie scoring equals each variant's own pass within 4e-5 nats (float32
# rounding: the kernels sum in another order). Measured on the real model, 22 variants: at most
# 1.9e-5 per token and 3.1e-5 per answer, under SDPA (chunks 7, 64, 4096) and eager attention.
TOLERANCE = 4e-5


def test_the_trie_holds_each_distinct_prefix_once_in_depth_first_order():
    trie = TokenTrie.build(SEQUENCES)
    prefixes = {seq[:k] for seq in SEQUENCES for k in range(1, len(seq) + 1)}
    assert len(trie) == len(prefixes) == 10
    for seq, path in zip(SEQUENCES, trie.paths, strict=True):
        assert tuple(trie.tokens[n] for n in path) == seq
        assert [trie.depth[n] for n in path] == list(range(len(seq)))
        assert all(trie.parent[b] == a for a, b in itertools.pairwise(path))
        assert trie.parent[path[0]] == -1
    # depth-first: a node's subtree is the contiguous run [node, subtree_end)
    for node in range(len(trie)):
        inside = {q for q in range(len(trie)) if node in trie.ancestors(q) or q == node}
        assert inside == set(range(node, trie.subtree_end[node]))


def _variants(lm: CausalLM):
    renderer = lm.renderer(zelk_case())
    units = [u.id for u in renderer.units]
    variants = [Variant()] + [Variant.without(list(c)) for k in (1, 2)
                              for c in itertools.combinations(units, k)]
    return [renderer.render(v) for v in variants]


@pytest.mark.real_model
@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_tree_scores_equal_plain_scores_on_the_real_model(real_lm, chunk):
    rendered = _variants(real_lm)
    tree = CausalLM(real_lm.model, real_lm.tokenizer, model_id="x", revision=f"tree{chunk}",
                    options=ScoringOptions(tree_chunk_tokens=chunk))
    plain = CausalLM(real_lm.model, real_lm.tokenizer, model_id="x", revision="plain",
                     options=PLAIN)
    got, want = tree.score(rendered), plain.score(rendered)
    trie_size = len(TokenTrie.build([r.input_ids for r in rendered]))
    assert tree.cost.tokens == trie_size < plain.cost.tokens  # shared prefixes ran once
    assert tree.cost.model_calls == -(-trie_size // chunk)
    assert tree.cost.forward_passes == len(rendered)
    for g, w in zip(got, want, strict=True):
        assert len(g.token_logprobs) == len(w.token_logprobs)
        assert max(abs(a - b) for a, b in zip(g.token_logprobs, w.token_logprobs,
                                              strict=True)) < TOLERANCE
        assert abs(g.total - w.total) < TOLERANCE


def test_sequences_that_prefix_each_other_and_share_targets_score_right(tiny_lm):
    """One variant a prefix of another; two targets read off the same node."""
    full = _variants(tiny_lm)[0].input_ids
    items = [ScoreItem(full, 5), ScoreItem(full[:-3], 4), ScoreItem(full, 2),
             ScoreItem(full[:-3] + (17, 18), 2)]
    tree = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="t", revision="tree-edge",
                    options=ScoringOptions(tree_chunk_tokens=5))
    plain = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="t", revision="plain-edge",
                     options=PLAIN)
    for g, w in zip(tree.scorer.score(items), plain.scorer.score(items), strict=True):
        assert len(g.token_logprobs) == len(w.token_logprobs)
        assert abs(g.total - w.total) < TOLERANCE
    assert tree.cost.tokens == len(full) + 2


def test_sliding_window_models_fall_back_to_padded_batches(tiny_tokenizer):
    config = MistralConfig(vocab_size=len(tiny_tokenizer), hidden_size=32,
                           intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, sliding_window=16)
    model = MistralForCausalLM(config)
    assert not supports_tree_layout(model)
    lm = CausalLM(model, tiny_tokenizer, model_id="sw", revision="0")
    rendered = _variants(lm)[:4]
    lm.score(rendered)
    # padded batches: no trie, so more tokens than the distinct prefixes
    assert lm.cost.tokens > len(TokenTrie.build([r.input_ids for r in rendered]))


@pytest.mark.real_model
def test_eager_attention_reads_the_tree_mask_as_additive(real_lm):
    rendered = _variants(real_lm)[:6]
    plain = CausalLM(real_lm.model, real_lm.tokenizer, model_id="x", revision="plain-eager",
                     options=PLAIN)
    tree = CausalLM(real_lm.model, real_lm.tokenizer, model_id="x", revision="tree-eager",
                    options=ScoringOptions(tree_chunk_tokens=50))
    want = plain.score(rendered)
    with real_lm.eager_attention():
        got = tree.score(rendered)
    for g, w in zip(got, want, strict=True):
        assert abs(g.total - w.total) < TOLERANCE
