"""The real-text case set's construction (no model): real documents of 1,000+ characters, each
planted sentence a sentence unit of its own, claims that name the planted values."""

from __future__ import annotations

from bench.realtext import MIN_CHARS, candidates, passages
from relyscope.case import Case


def test_passages_are_long_prose_of_the_shipped_reference():
    found = passages()
    assert len(found) >= 20
    for _topic, text in found:
        assert len(text) >= MIN_CHARS and "::=" not in text and ">>>" not in text


def test_each_planted_sentence_is_a_sentence_unit_and_backs_one_claim():
    for data in candidates(6, 4, seed=14):
        case = Case.from_dict(data)
        units = {u.id: u.text for u in case.units("sentence")}
        assert len(units) >= 24
        meta = case.metadata
        for planted in meta["planted"]:
            assert units[planted["unit"]] == planted["sentence"]
        for value in meta["values"]:
            assert value in case.answer and any(value in p["sentence"] for p in meta["planted"])
        if meta["kind"] == "multi":
            assert case.claims == "auto" and len(meta["gold_per_claim"]) == 2
            assert meta["gold_per_claim"][0] != meta["gold_per_claim"][1]
        else:
            ((start, end),) = case.claims
            assert case.answer[start:end] == meta["values"][0]
            first, second = (p["sentence"] for p in meta["planted"])
            assert first != second  # the same value in different wording
