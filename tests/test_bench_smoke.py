"""Smoke test of the benchmarks: planted cases certify on the real model, and the perf
harness runs end to end on a tiny model and writes sane JSON. The full benchmarks are not run
here (`make bench`)."""

from __future__ import annotations

import json

import pytest

from bench import machine, perf
from bench.cases import KINDS, generate
from bench.certify import certify, contains
from relyscope.models import Variant


def test_the_generator_plants_one_gold_unit_and_a_paraphrase_per_case():
    cases = generate(dict.fromkeys(KINDS, 2), seed=3)
    assert len(cases) == 2 * len(KINDS)
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        meta = case.metadata
        assert meta["paraphrase"] and meta["paraphrase"] != case.query
        if meta["kind"] in ("single", "entity", "tools"):
            gold = meta["gold"][0]
            text = {u.id: u.text for u in case.units()}[gold]
            assert contains(text, meta["value"])
        if meta["kind"] == "redundant":
            assert len(meta["gold"]) == 2


@pytest.mark.real_model
def test_a_planted_single_fact_case_certifies_on_the_real_model(real_lm):
    case = generate({"single": 12})[11]  # 'What is the capital of ...?' with a short answer
    kept, cert = certify(real_lm, case)
    assert cert.certified, cert.reason
    assert kept is not None and contains(kept.answer, case.metadata["value"])
    assert kept.metadata["gold"] == case.metadata["gold"]
    assert cert.generations == len(case.sources) + 1


def test_the_perf_harness_writes_sane_json_on_a_tiny_model(tiny_lm, tmp_path):
    settings = perf.PerfSettings(
        cases=1, ablations=(8,), held_out=8, source_counts=(2, 3), filler_sentences=(0,),
        curve_config=perf.AuditConfig(methods=("loo", "ablation"), ablations=8, lds_masks=4),
        load_times=False, prompt_lengths=(64,), peers=("naive",), omp_probe=False,
        matmul_seconds=0.2, scoring_rounds=1)
    result = perf.run(settings, tmp_path, mode="smoke", log=lambda message: None, lm=tiny_lm)
    data = json.loads((tmp_path / "perf.json").read_text())
    assert (tmp_path / "perf.md").read_text().startswith("# Performance benchmark")
    assert {"machine", "side_by_side", "curves", "passes_per_second", "loo_savings_5_sources",
            "scoring_changes", "matmul_gflops", "flops_share"} <= set(data)
    assert data["machine"]["cores"] >= 1 and data["machine"]["torch"]
    block = data["side_by_side"]["summary"]["8"]
    mine, naive = block["contenders"]["relyscope"], block["contenders"]["naive"]
    for entry in (mine, naive):
        assert entry["audits_per_second"] == pytest.approx(1 / entry["seconds_per_audit"])
    assert naive["forward_passes_per_audit"] == 9  # the full prompt + 8 masks, one pass each
    rows = {r["contender"]: r for r in data["side_by_side"]["rows"]}
    # the naive loop runs every token of every variant and keeps a logit at each of them
    assert rows["naive"]["tokens"] == rows["naive"]["logit_positions"] == naive["tokens_per_audit"]
    # FLOPs by hand: 2 x non-embedding parameters per token + 2 x LM head per kept logit
    embed = tiny_lm.model.get_input_embeddings().weight.numel()
    non_embedding = sum(p.numel() for p in tiny_lm.model.parameters()) - embed  # tied head
    by_hand = {name: (2.0 * non_embedding * r["tokens"] + 2.0 * embed * r["logit_positions"])
               / r["seconds"] / 1e9 / data["matmul_gflops"] for name, r in rows.items()}
    assert data["flops_share"]["relyscope_n8"] == pytest.approx(by_hand["relyscope"], rel=1e-9)
    assert data["flops_share"]["naive_n8"] == pytest.approx(by_hand["naive"], rel=1e-9)
    # leave-one-out on 5 sources: 6 renderings; token counts checked against the renderings
    renderer = tiny_lm.renderer(perf.perf_case(0))
    rendered = [renderer.render()] + [renderer.render(Variant.without([u.id]))
                                      for u in renderer.units]
    savings = data["loo_savings_5_sources"]
    assert savings["naive"]["tokens"] == sum(len(r.input_ids) for r in rendered)
    prefixes = {tuple(r.input_ids[:k]) for r in rendered for k in range(1, len(r.input_ids) + 1)}
    assert savings["token_trie"]["tokens"] == len(prefixes)  # each distinct prefix once
    assert all(entry["forward_passes"] == 6 for entry in savings.values())
    assert [p["sources"] for p in data["curves"]["sources"]] == [2, 3]
    bf16 = data["other_dtypes"]["bfloat16"]
    if machine.native_bf16():
        cast = bf16["summary"]["8"]["contenders"]
        assert set(cast) == {"relyscope"}  # the naive loop is not repeated per dtype
        assert cast["relyscope"]["tokens_per_audit"] == mine["tokens_per_audit"]
        assert bf16["matmul_gflops"] > 0
    else:
        assert "native bfloat16" in bf16["skipped"]
    assert result["seconds"] > 0


def test_the_contextcite_side_by_side_runs_on_two_tiny_cases(tiny_lm):
    """ContextCite (the bench extra) against relyscope's ablation on the same model object:
    the same prompt and answer tokens, its own n masks, both judged on the same held-out
    masks. Skipped, saying why, where the bench extra is not installed."""
    pytest.importorskip("context_cite", reason="the bench extra is not installed "
                                               "(pip install -e '.[bench]')")
    settings = perf.PerfSettings(cases=2, ablations=(8,), held_out=8, peers=("contextcite",))
    side = tiny_lm.tokenizer.padding_side
    try:
        result = perf.side_by_side(tiny_lm, settings, perf.param_counts(tiny_lm),
                                   log=lambda message: None)
    finally:
        tiny_lm.tokenizer.padding_side = side  # ContextCite sets left padding on it
    cases = [perf.perf_case(i) for i in range(2)]
    rows = {(r["case"], r["contender"]): r for r in result["rows"]}
    assert set(rows) == {(c.id, who) for c in cases for who in ("relyscope", "contextcite")}
    for case in cases:
        theirs, mine = rows[(case.id, "contextcite")], rows[(case.id, "relyscope")]
        # token-identical prompts and answers, so both fit the same function of the masks
        assert theirs["info"] == {"same_prompt_tokens": True, "same_answer_tokens": True}
        assert theirs["forward_passes"] == 8  # one pass per mask, nothing shared
        answer = len(tiny_lm.renderer(case).render().target_ids)
        assert theirs["tokens"] > 8 * answer
        assert mine["tokens"] < theirs["tokens"]  # the trie shares every prefix
        assert theirs["top1"] in {s.id for s in case.sources}
    block = result["summary"]["8"]
    assert set(block["contenders"]) == {"relyscope", "contextcite"}
    ratios = block["ratios"]["relyscope_vs_contextcite"]
    assert ratios["forward_passes"] == pytest.approx(
        block["contenders"]["relyscope"]["forward_passes_per_audit"] / 8)
