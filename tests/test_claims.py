"""Per-claim attribution: claims parsed and refused by field, carried over the wire, and scored
on the real model from the audit's own forward passes."""

from __future__ import annotations

import argparse

import pytest

from relyscope.audits import run_audit
from relyscope.audits.claims import sentence_spans
from relyscope.case import Case, CaseError
from relyscope.cli.options import add_audit_options, audit_config_from
from relyscope.client import Client
from relyscope.config import AuditConfig
from relyscope.models.scoring import MemoryScoreCache
from relyscope.protocol.convert import (
    case_from_proto,
    case_to_proto,
    config_from_proto,
    config_to_proto,
    report_from_proto,
    report_to_proto,
)
from relyscope.report.writers import markdown
from relyscope.report_model import Report
from tests.service_support import running_server

SYSTEM = "Answer using the context."
FILLER = [
    {"id": "river", "text": "The Orrin river floods every spring, covering the valley farms "
                            "with silt."},
    {"id": "copper", "text": "Copper prices rose sharply in the northern markets last year."},
]
TWO_FACTS = FILLER + [
    {"id": "guild", "text": "The Zelk guild was founded by Anna Roth in the port of Merrow."},
    {"id": "tower", "text": "The Brannic tower is 212 metres tall and stands in Quorvia."},
]
TWO_ANSWER = "The Zelk guild was founded by Anna Roth. The Brannic tower is 212 metres tall."
# two sources carry the value in different wording; the answer copies the first one's
REDUNDANT = FILLER + [
    {"id": "a", "text": "The Zelk guild was founded in 1743 by a group of sailors."},
    {"id": "b", "text": "Sailors established the Zelk guild in the year 1743, records show."},
]
REDUNDANT_ANSWER = "The Zelk guild was founded in 1743. Its emblem is a green heron."
METHODS = AuditConfig(methods=("attention", "loo", "ablation"),
                      method_settings={"ablation": {"ablations": 32}})


def two_fact_case(**extra: object) -> Case:
    return Case.from_dict({"id": "two", "system": SYSTEM, "sources": TWO_FACTS,
                           "query": "Who founded the Zelk guild, and how tall is the Brannic "
                                    "tower?", "answer": TWO_ANSWER, **extra})


def with_claims(config: AuditConfig, claims: object) -> AuditConfig:
    return AuditConfig.from_dict({**config.model_dump(mode="json"), "claims": claims})


# -- input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "field", "words"), [
    ([[5, 2]], "claims[0]", "0 <= start < end"),
    ([[0, 10], [3, 999]], "claims[1]", "ends past the answer"),
    ([[0]], "claims[0]", "not a [start, end] pair"),
    ("sentences", "claims[0]", "not a [start, end] pair"),
    ([], "claims", "non-empty list"),
    (7, "claims", '"auto"'),
])
def test_bad_claims_are_refused_naming_the_field(claims, field, words):
    with pytest.raises(CaseError) as err:
        two_fact_case(claims=claims)
    assert err.value.field == field and words in err.value.message
    if "past the answer" not in words:  # the config does not know the answer
        with pytest.raises(CaseError) as err:
            AuditConfig.from_dict({"claims": claims})
        assert err.value.field == field


def test_claims_read_from_json_text_and_the_cli():
    assert two_fact_case(claims=[[0, 40], [41, 78]]).claims == ((0, 40), (41, 78))
    assert two_fact_case(claims="auto").claims == "auto"
    assert AuditConfig.from_dict({"claims": "0:40,41:78"}).claims == ((0, 40), (41, 78))
    parser = argparse.ArgumentParser()
    add_audit_options(parser)
    assert audit_config_from(parser.parse_args(["--claims", "3:9,10:12"])).claims == (
        (3, 9), (10, 12))
    assert audit_config_from(parser.parse_args(["--claims", "auto"])).claims == "auto"
    assert audit_config_from(parser.parse_args([])).claims is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--claims", "9:3"])


def test_sentence_spans_cover_each_sentence_without_surrounding_space():
    text = "  First one here. Second, with 3.5 units!\nThird?  "
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "First one here.", "Second, with 3.5 units!", "Third?"]


def test_claims_cross_the_wire_both_ways():
    case = two_fact_case(claims=[[0, 40], [41, 78]])
    assert case_from_proto(case_to_proto(case)) == case
    auto = two_fact_case(claims="auto")
    assert case_from_proto(case_to_proto(auto)).claims == "auto"
    assert case_from_proto(case_to_proto(two_fact_case())).claims is None
    for claims in ("auto", "1:4", None):
        config = AuditConfig.from_dict({"claims": claims})
        assert config_from_proto(config_to_proto(config)).claims == config.claims
    report = Report.from_dict({
        "case_id": "c", "answer": "A b.", "answer_logprob": -1.0, "answer_tokens": 3,
        "claims": [{"index": 0, "text": "A b.", "char_span": [0, 4], "token_span": [0, 3],
                    "logprob": -1.0, "logprob_per_token": -0.33, "joint_drop": None,
                    "scores": {"loo": {"d0": 2.5, "d1": None}}, "reliance": {"d0": 2.5},
                    "top_units": ["d0"], "citations": ["d0"], "verdict": "supported",
                    "verdicts": ["grounded"], "extras": {"ablation": {"lds": 0.5}}}]})
    assert report_from_proto(report_to_proto(report)) == report


# -- on the real model ----------------------------------------------------------------------


def fresh_audit(lm, case: Case, config: AuditConfig, monkeypatch) -> Report:
    """An audit with an empty score cache, so its pass count is its own."""
    monkeypatch.setattr(lm.scorer, "cache", MemoryScoreCache())
    return run_audit(case, lm, config)


def test_each_claim_cites_its_own_source_at_no_extra_pass(real_lm, monkeypatch):
    case = two_fact_case()
    plain = fresh_audit(real_lm, case, METHODS, monkeypatch)
    claimed = fresh_audit(real_lm, case, with_claims(METHODS, "auto"), monkeypatch)
    assert claimed.cost["forward_passes"] == plain.cost["forward_passes"]
    assert claimed.cost["tokens"] == plain.cost["tokens"]
    assert claimed.cost["claims"]["forward_passes"] == 0
    assert plain.claims == [] and "claims" not in plain.cost
    assert claimed.settings["claims"]["from"] == "auto"
    first, second = claimed.claims
    assert (first.text, second.text) == ("The Zelk guild was founded by Anna Roth.",
                                         "The Brannic tower is 212 metres tall.")
    assert first.char_span == (0, 40) and second.char_span == (41, len(TWO_ANSWER))
    assert first.token_span[1] == second.token_span[0]
    assert second.token_span[1] == claimed.answer_tokens
    assert first.top_units[0] == "guild" and second.top_units[0] == "tower"
    assert first.citations[0] == "guild" and "tower" not in first.citations
    for claim in (first, second):
        assert claim.verdict == "supported" and "grounded" in claim.verdicts
        assert set(claim.scores) == {"attention", "loo", "ablation"}
    # the claims' log-probs add up to the answer's: the same per-token scores, split
    assert first.logprob + second.logprob == pytest.approx(claimed.answer_logprob, abs=1e-4)
    assert "| The Zelk guild was founded by Anna Roth. | 0-40 | guild" in markdown([claimed])


def test_a_claim_over_the_whole_answer_equals_the_whole_answer_scores(real_lm):
    report = run_audit(two_fact_case(), real_lm, with_claims(METHODS, [[0, len(TWO_ANSWER)]]))
    (claim,) = report.claims
    assert claim.token_span == (0, report.answer_tokens)
    for unit in report.units:
        assert claim.scores["loo"][unit.id] == pytest.approx(unit.reliance["loo"], abs=1e-6)
        assert claim.scores["ablation"][unit.id] == pytest.approx(unit.reliance["ablation"],
                                                                  abs=1e-6)
        assert claim.scores["attention"][unit.id] == pytest.approx(unit.provenance["attention"],
                                                                   abs=1e-6)
    assert claim.extras["ablation"]["lds"] == pytest.approx(report.methods["ablation"]["lds"])


def test_a_claim_on_a_value_sees_redundant_sources_and_a_made_up_claim_is_unsupported(real_lm):
    value = REDUNDANT_ANSWER.index("1743")
    emblem = REDUNDANT_ANSWER.index("Its")
    case = Case.from_dict({"id": "redundant", "system": SYSTEM, "sources": REDUNDANT,
                           "query": "When was the Zelk guild founded?",
                           "answer": REDUNDANT_ANSWER,
                           "claims": [[value, value + 4], [emblem, len(REDUNDANT_ANSWER)]]})
    report = run_audit(case, real_lm, METHODS)
    on_value, made_up = report.claims
    assert on_value.text == "1743" and report.settings["claims"]["from"] == "case"
    assert "redundant-sources" in on_value.verdicts and on_value.verdict == "supported"
    assert set(on_value.citations) == {"a", "b"}
    assert max(on_value.scores["loo"].values()) < 1.0  # no single removal moves the value
    assert made_up.verdict == "unsupported" and made_up.citations == []
    assert made_up.reading == "likely-hallucination"  # the model is not confident of it
    assert made_up.logprob_per_token < -1.0


def test_claims_over_grpc(real_lm):
    case = two_fact_case(claims=[[0, 40]])
    with running_server(real_lm) as handle, Client(f"127.0.0.1:{handle.port}",
                                                   timeout=300) as client:
        report = client.audit(case, METHODS)
    (claim,) = report.claims
    assert claim.text == "The Zelk guild was founded by Anna Roth."
    assert claim.top_units[0] == "guild" and claim.verdict == "supported"
    assert report.cost["claims"]["forward_passes"] == 0
    with running_server(real_lm) as handle, Client(f"127.0.0.1:{handle.port}",
                                                   timeout=300) as client:
        auto = client.audit(two_fact_case(), with_claims(METHODS, "auto"))
    assert [c.text for c in auto.claims] == ["The Zelk guild was founded by Anna Roth.",
                                             "The Brannic tower is 212 metres tall."]
