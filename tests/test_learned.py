"""The learned attributor's fast path on the real packaged model and its shipped weights."""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.audits.learned import LABEL, UNRELIABLE
from relyscope.audits.registry import voting_methods
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM

pytestmark = pytest.mark.real_model

PLANTED = "s2"


def planted_case() -> Case:
    """An invented fact among unrelated sentences: the answer can only come from s2."""
    texts = ["Bakers in Dorvel sell a dark rye bread flavoured with caraway seeds.",
             "The Kelmar railway climbs through pine forests on a narrow gauge track.",
             "The Brisanth tower is 734 metres tall.",
             "Winters in Tauvik are long, and the lakes freeze for three months.",
             "A ferry links Ostrend to the islands twice a day in summer."]
    return Case.from_dict({
        "id": "brisanth", "system": "Answer the question in one sentence using the context.",
        "query": "How tall is the Brisanth tower?",
        "sources": [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)],
        "answer": "The Brisanth tower is 734 metres tall."})


def test_fast_path_ranks_the_planted_source_first(real_lm: CausalLM) -> None:
    report = run_audit(planted_case(), real_lm, AuditConfig.from_dict({"preset": "fast"}))
    assert not report.errors
    assert report.settings["config"]["methods"] == ["attention", "learned"]
    scores = {u.id: u.reliance["learned"] for u in report.units}
    assert max(scores, key=lambda uid: scores[uid]) == PLANTED
    assert all(u.reliance.get("loo") is None and u.reliance.get("ablation") is None
               for u in report.units)
    extras = report.methods["learned"]
    assert extras["label"] == LABEL and extras["estimate"] is True
    assert extras["estimate_forward_passes"] == 0  # the attention method's pass, shared
    assert report.cost["per_method"]["attention"]["forward_passes"] == 1
    check = extras["verification"]
    assert check["masks"] == 12 and isinstance(check["lds"], float)
    # refit to its 12 masks (the default): the zero-pass estimate is kept beside the refit
    # scores, and the check's LDS is the leave-one-out one (the refit saw every mask)
    refit_info = dict(check["refit"])
    scale = refit_info.pop("scale")
    errors = refit_info.pop("left_out_error")
    fit = refit_info.pop("fit")
    assert refit_info == {"masks": 12, "penalty": 3.0, "backwards": False,
                          "lds": "leave-one-out over the masks"}
    assert scale > 0  # the masks agree with the estimate's direction on this case
    # 12 masks reach the sparse fit's minimum: both fits were tried, and the one reported is
    # the sparse one exactly where its left-out error is at most half the ridge's
    assert errors["ridge"] >= 0 and errors["sparse"] is not None
    assert fit == ("sparse" if errors["sparse"] <= 0.5 * errors["ridge"] else "ridge")
    assert isinstance(check["lds_before_refit"], float)
    before = extras["estimate_before_refit"]
    assert max(before, key=lambda uid: before[uid]) == PLANTED
    assert before != scores
    assert check["top1"] == PLANTED and check["top1_survives"] is True
    assert check["top1_measured_drop"] > 1.0
    assert check["reliable"] and UNRELIABLE not in report.verdicts
    # the verification LDS reaches the report a caller reads (its JSON form)
    saved = report.to_dict()["methods"]["learned"]["verification"]
    assert saved["lds"] == check["lds"] and saved["masks"] == 12
    # 1 attention pass (which also scores the full answer), the joint removal, 12 masks and
    # the top-1 removal; no other method and no faithfulness variants (the estimate's check
    # is the check)
    assert report.cost["forward_passes"] <= 15
    assert report.faithfulness == {}
    # the caller asked for the fast path: the estimate votes in unit verdicts (never otherwise)
    assert "learned" not in voting_methods()
    relied = report.settings["config"]["thresholds"]["relied_drop"]
    for unit in report.units:
        assert unit.verdict.startswith("relied") == (scores[unit.id] >= relied)


def test_an_estimate_failing_its_own_check_says_so(real_lm: CausalLM) -> None:
    config = AuditConfig.from_dict({"preset": "fast", "method_settings": {
        "learned": {"min_lds": 1.0, "top1_ratio": 1000.0}}})
    report = run_audit(planted_case(), real_lm, config)
    check = report.methods["learned"]["verification"]
    assert not check["reliable"] and check["top1_survives"] is False
    assert UNRELIABLE in report.verdicts
    assert any("learned estimate failed its own check" in w for w in report.warnings)


def test_too_few_masks_leave_the_estimate_as_it_was(real_lm: CausalLM) -> None:
    config = AuditConfig.from_dict({"preset": "fast", "method_settings": {
        "learned": {"verify": 4}}})
    report = run_audit(planted_case(), real_lm, config)
    extras = report.methods["learned"]
    assert extras["verification"]["refit"] is None and "estimate_before_refit" not in extras
    assert extras["verification"]["lds"] == extras["verification"]["lds_before_refit"]
