"""ablations="auto" with `auto_lds_target`: stop at the first round whose cross-validated LDS
reaches the target; without a reachable target the rounds go on as before."""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.audits.registry import settings_for
from relyscope.case import CaseError
from relyscope.config import AuditConfig
from relyscope.models.scoring import MemoryScoreCache
from tests.test_ablation_screen import CASE

AUTO = {"ablations": "auto", "auto_start": 16, "auto_step": 4, "auto_cap": 28,
        "auto_lds_tol": 0.0}


def test_target_is_checked_by_field() -> None:
    with pytest.raises(CaseError) as err:
        settings_for(AuditConfig(method_settings={"ablation": {"auto_lds_target": 2}}),
                     "ablation")
    assert err.value.field == "method_settings.ablation.auto_lds_target"


def test_a_reached_target_stops_at_the_first_round(real_lm, monkeypatch) -> None:
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("ablation",), method_settings={
        "ablation": {**AUTO, "auto_lds_target": -0.99}})
    extras = run_audit(CASE, real_lm, config).methods["ablation"]
    assert extras["masks_used"] == 16 and len(extras["rounds"]) == 1
    assert extras["stopped"].startswith("target: cross-validated LDS")
    assert extras["rounds"][0]["lds"] >= -0.99


def test_an_unreached_target_leaves_the_rounds_to_the_other_rules(real_lm, monkeypatch
                                                                  ) -> None:
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("ablation",), method_settings={
        "ablation": {**AUTO, "auto_lds_target": 1.0}})
    extras = run_audit(CASE, real_lm, config).methods["ablation"]
    assert not extras["stopped"].startswith("target")
    assert all(r["lds"] is None or r["lds"] < 1.0 for r in extras["rounds"][:-1])
