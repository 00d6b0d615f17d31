"""Hierarchical sentence-level leave-one-out: only the sources that matter are split, and their
sentence drops equal a flat sentence-level audit's."""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.audits.registry import settings_for
from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig
from relyscope.models.scoring import MemoryScoreCache

SOURCES = [
    {"id": "river", "text": "The Orrin river floods every spring. Farmers plant rice after the "
                            "water recedes. The valley is known for its silt."},
    {"id": "guild", "text": "The Zelk guild trades in amber. The Zelk guild was founded by Anna "
                            "Roth. Its hall stands near the harbour."},
    {"id": "copper", "text": "Copper prices rose sharply last year. Miners moved north. New "
                             "smelters opened in the hills."},
    {"id": "lights", "text": "Tidewater lighthouses use rotating lenses. Keepers log every "
                             "ship. The lamps burn whale oil no more."},
]
CASE = Case.from_dict({"id": "hier", "system": "Answer using the context.",
                       "query": "Who founded the Zelk guild?", "sources": SOURCES,
                       "answer": "The Zelk guild was founded by Anna Roth."})


def test_expand_settings_are_checked_by_field():
    assert settings_for(AuditConfig(method_settings={"loo": {"expand_drop": 1.5}}),
                        "loo").expand_drop == 1.5
    with pytest.raises(CaseError) as err:
        settings_for(AuditConfig(method_settings={"loo": {"max_expanded": 0}}), "loo")
    assert err.value.field == "method_settings.loo.max_expanded"


def test_only_relied_sources_are_split_and_match_the_flat_audit(real_lm, monkeypatch):
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("loo",), method_settings={"loo": {"expand_drop": 2.0}})
    report = run_audit(CASE, real_lm, config)
    tree = report.methods["loo"]["hierarchy"]
    assert tree["expanded"] == ["guild"]
    assert set(tree["not_expanded"]) == {"river", "copper", "lights"}
    assert tree["sentences_scored"] == 3 and tree["sentences_total"] == 12
    assert tree["best_sentence"] == {"guild": "guild#1"}
    assert tree["sentence_ranking"][0] == "guild#1"
    # one pass per sentence; the sentence-level rendering of the full prompt is token for
    # token the source-level one here (single spaces between sentences): a cache hit
    assert tree["forward_passes"] == 3
    assert report.cost["per_method"]["loo"]["forward_passes"] == 4 + 3  # sources, then tree
    flat = run_audit(CASE, real_lm, AuditConfig(methods=("loo",), granularity="sentence"))
    for sid, drop in tree["sentence_drops"].items():
        assert drop == pytest.approx(flat.unit(sid).reliance["loo"], abs=1e-4)
    assert flat.ranking("loo")[0] == "guild#1"
    assert flat.cost["forward_passes"] > report.cost["forward_passes"]


def test_no_source_over_the_threshold_expands_nothing(real_lm):
    config = AuditConfig(methods=("loo",), method_settings={"loo": {"expand_drop": 1e6}})
    tree = run_audit(CASE, real_lm, config).methods["loo"]["hierarchy"]
    assert tree["expanded"] == [] and tree["sentences_scored"] == 0
    assert tree["forward_passes"] == 0
