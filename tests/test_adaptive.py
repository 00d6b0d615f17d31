"""Adaptive ablation count: masks in rounds until the surrogate settles, with a cap."""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.audits.registry import settings_for
from relyscope.case import CaseError
from relyscope.config import AuditConfig
from relyscope.models.scoring import MemoryScoreCache
from tests.conftest import zelk_case

AUTO = {"ablations": "auto", "auto_start": 16, "auto_step": 8, "auto_cap": 48}


def test_auto_is_a_setting_and_nonsense_is_refused_by_field():
    assert settings_for(AuditConfig(method_settings={"ablation": AUTO}),
                        "ablation").ablations == "auto"
    with pytest.raises(CaseError) as err:
        settings_for(AuditConfig(method_settings={"ablation": {"ablations": "lots"}}),
                     "ablation")
    assert err.value.field == "method_settings.ablation.ablations"


def test_auto_stops_when_lds_and_top_k_settle_or_at_the_cap(real_lm, monkeypatch):
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("ablation",), method_settings={"ablation": AUTO},
                         claims="auto")
    report = run_audit(zelk_case(), real_lm, config)
    extras = report.methods["ablation"]
    (claim,) = report.claims  # a claim's surrogate is fit on the masks the audit used
    assert claim.extras["ablation"]["masks_fit"] == extras["masks_used"]
    assert claim.top_units[0] == "d1"
    rounds = extras["rounds"]
    assert [r["masks"] for r in rounds] == list(range(16, extras["masks_used"] + 1, 8))
    assert extras["masks_fit"] == extras["masks_used"] <= 48
    if extras["stopped"].startswith("settled"):
        last, before = rounds[-1], rounds[-2]
        assert abs(last["lds"] - before["lds"]) <= 0.03
        assert set(last["top"]) == set(before["top"])
    else:
        assert extras["stopped"] == "cap of 48 masks"
    assert report.ranking("ablation")[0] == "d1"  # the planted source
    # no more passes than the masks it used (duplicates run once) plus full and joint removal
    assert report.cost["forward_passes"] <= extras["masks_used"] + 2 + 6  # + faithfulness


def test_a_pass_budget_stops_the_rounds(real_lm, monkeypatch):
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("ablation",), max_forward_passes=20,
                         method_settings={"ablation": {**AUTO, "auto_lds_tol": 0.0}})
    report = run_audit(zelk_case(), real_lm, config)
    assert report.methods["ablation"]["stopped"].startswith("budget:")
    assert report.partial and report.cost["forward_passes"] <= 20
