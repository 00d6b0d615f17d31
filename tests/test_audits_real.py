"""Audit methods on the real packaged model: claims that could fail."""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig

pytestmark = pytest.mark.real_model

SYSTEM = "Answer the question in one sentence using the context."
FILLER = [
    "The Orrin river floods every spring, covering the valley farms with silt.",
    "Copper prices rose sharply in the northern markets last year.",
    "Tidewater lighthouses use rotating lenses to guide ships at night.",
    "The Velmar festival celebrates the first snowfall with paper lanterns.",
]
SINGLE_FACTS = [
    ("Who founded the Zelk guild?", "The Zelk guild was founded by Anna Roth.",
     "The Zelk guild was founded by Anna Roth."),
    ("What is the capital of Quorvia?", "The capital of Quorvia is Tessaly.",
     "The capital of Quorvia is Tessaly."),
    ("How tall is the Brannic tower?", "The Brannic tower is 212 metres tall.",
     "The Brannic tower is 212 metres tall."),
]
RANKING_CONFIG = AuditConfig(methods=("loo", "ablation", "tracing"), ablations=32, lds_masks=8,
                             tracing_samples=2, tracing_top_units=0,
                             tracing_in_distribution=False)


def fact_case(index: int) -> Case:
    query, fact, answer = SINGLE_FACTS[index]
    sources = [{"id": f"filler{i}", "text": t} for i, t in enumerate(FILLER)]
    gold = index % len(sources)
    sources.insert(gold, {"id": "gold", "text": fact})
    return Case.from_dict({"id": f"fact{index}", "system": SYSTEM, "query": query,
                           "sources": sources, "answer": answer})


@pytest.mark.parametrize("index", range(len(SINGLE_FACTS)))
def test_the_fact_source_ranks_first_under_loo_ablation_and_tracing(real_lm, index):
    report = run_audit(fact_case(index), real_lm, RANKING_CONFIG)
    for method in ("loo", "ablation", "tracing"):
        assert report.ranking(method)[0] == "gold", (method, report.ranking(method))
    assert report.unit("gold").verdict in {"relied", "relied-not-attended"}
    assert "grounded" in report.verdicts
    assert report.faithfulness["ablation"]["lds"] is not None


def test_redundant_copies_each_matter_little_but_jointly_a_lot(real_lm):
    fact = "The Zelk guild was founded by Anna Roth."
    case = Case.from_dict({
        "id": "redundant", "system": SYSTEM, "query": "Who founded the Zelk guild?",
        "answer": fact,
        "sources": [{"id": "copy_a", "text": fact}, {"id": "f0", "text": FILLER[0]},
                    {"id": "copy_b", "text": "Records show the Zelk guild was founded by "
                                             "Anna Roth."},
                    {"id": "f1", "text": FILLER[1]}]})
    report = run_audit(case, real_lm, AuditConfig(methods=("attention", "loo")))
    joint = report.methods["joint_removal"]["drop"]
    singles = [report.unit(u).reliance["loo"] for u in ("copy_a", "copy_b")]
    assert joint > 10
    assert all(s < joint / 3 for s in singles)
    assert "redundant-sources" in report.verdicts


def test_a_question_the_model_knows_is_parametric(real_lm):
    case = Case.from_dict({
        "id": "france", "system": SYSTEM, "query": "What is the capital of France?",
        "sources": [{"id": f"f{i}", "text": t} for i, t in enumerate(FILLER)]})
    report = run_audit(case, real_lm, AuditConfig(methods=("attention", "loo")))
    assert "Paris" in report.answer
    assert report.verdicts == ["parametric"]
    assert all(u.verdict in {"unused", "consulted-not-relied"} for u in report.units)


def tool_case() -> Case:
    return Case.from_dict({
        "id": "tools", "query": "What is the temperature in Mirel right now?",
        "system": "Answer the question in one sentence using the context and tool results.",
        "sources": [{"id": "f0", "text": FILLER[0]}],
        "tool_calls": [
            {"id": "call_pop", "name": "get_population", "arguments": {"city": "Mirel"},
             "output": "41,000 people"},
            {"id": "call_temp", "name": "get_temperature", "arguments": {"city": "Mirel"},
             "output": "23 degrees Celsius", "counterfactual": "5 degrees Celsius"}]})


def test_the_tool_output_the_answer_came_from_ranks_first(real_lm):
    report = run_audit(tool_case(), real_lm, AuditConfig(methods=("attention", "loo", "tools")))
    assert "23 degrees" in report.answer
    assert report.ranking("tools")[0] == "call_temp"
    assert report.ranking("loo")[0] == "call_temp"
    drops = report.methods["tools"]["drops"]
    assert set(drops["call_temp"]) == {"empty", "error", "counterfactual"}
    assert drops["call_temp"]["counterfactual"]["answer"] > 2.0
    # the later call's log-prob is measured against the earlier call's ablation
    assert drops["call_pop"]["empty"]["call:call_temp"] is not None


def test_half_the_pass_budget_gives_a_partial_report_not_an_exception(real_lm):
    # few masks: the budget, not the surrogate, is under test; the cut still falls in ablation
    # (after attention and loo, which must survive it)
    config = AuditConfig(methods=("attention", "loo", "ablation"), ablations=12, lds_masks=4,
                         seed=7)
    case = fact_case(0)
    full = run_audit(case, real_lm.__class__(real_lm.model, real_lm.tokenizer,
                                             model_id="budget", revision="a"), config)
    needed = full.cost["forward_passes"]
    assert not full.partial
    half = config.model_copy(update={"max_forward_passes": needed // 2})
    report = run_audit(case, real_lm.__class__(real_lm.model, real_lm.tokenizer,
                                               model_id="budget", revision="b"), half)
    assert report.partial
    assert report.cost["forward_passes"] <= needed // 2
    assert any("cut" in w for w in report.warnings)
    assert report.settings["cut"]
    assert report.unit("gold").reliance["loo"] is not None  # high-priority work kept
    assert needed // 2 > full.cost["per_method"]["loo"]["forward_passes"] + 1  # cut after loo


def test_empty_sources_and_no_tools_is_a_named_error(real_lm):
    case = Case.from_dict({"id": "empty", "query": "Who?", "answer": "Nobody."})
    with pytest.raises(CaseError) as info:
        run_audit(case, real_lm)
    assert info.value.field == "sources"
    assert "nothing to audit" in str(info.value)


def test_an_answer_longer_than_the_context_is_a_named_error(real_lm):
    case = fact_case(0).with_answer("word " * 8300)
    with pytest.raises(CaseError) as info:
        run_audit(case, real_lm)
    assert info.value.field == "answer"
    assert "longer than the model's context" in str(info.value)
