"""Leave-one-out behind an ablation screen (loo `screen_top`): only the surrogate's top units
are removed, their drops equal flat leave-one-out's, and with ablation in the same audit the
screen's masks are the ablation's own cached variants (no extra passes)."""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.audits.registry import settings_for
from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig
from relyscope.models.scoring import MemoryScoreCache

SOURCES = [
    {"id": "river", "text": "The Orrin river floods every spring."},
    {"id": "guild", "text": "The Zelk guild was founded by Anna Roth."},
    {"id": "copper", "text": "Copper prices rose sharply last year."},
    {"id": "lights", "text": "Tidewater lighthouses use rotating lenses."},
    {"id": "bread", "text": "The bakery on Elm street sells rye bread."},
]
CASE = Case.from_dict({"id": "screen", "query": "Who founded the Zelk guild?",
                       "sources": SOURCES, "answer": "The Zelk guild was founded by Anna Roth."})
ABLATION = {"ablations": 16}


def test_screen_setting_is_checked_by_field() -> None:
    assert settings_for(AuditConfig(method_settings={"loo": {"screen_top": 2}}),
                        "loo").screen_top == 2
    with pytest.raises(CaseError) as err:
        settings_for(AuditConfig(method_settings={"loo": {"screen_top": 0}}), "loo")
    assert err.value.field == "method_settings.loo.screen_top"


def test_screened_drops_equal_flat_ones_at_no_extra_mask_passes(real_lm, monkeypatch) -> None:
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    flat = run_audit(CASE, real_lm, AuditConfig(methods=("loo",)))
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("loo", "ablation"), method_settings={
        "loo": {"screen_top": 2}, "ablation": ABLATION})
    report = run_audit(CASE, real_lm, config)
    screen = report.methods["loo"]["screen"]
    assert screen["units"][0] == "guild" and len(screen["units"]) == 2
    assert screen["masks"] == 16 and screen["mask_passes"] == 0
    assert screen["not_removed"] == 3
    for unit in report.units:
        drop = unit.reliance["loo"]
        if unit.id in screen["units"]:
            assert drop == pytest.approx(flat.unit(unit.id).reliance["loo"], abs=1e-4)
        else:
            assert drop is None
    # at most two removals of its own (a removal can be one of the masks), not five
    assert report.cost["per_method"]["loo"]["forward_passes"] <= 2
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    both = run_audit(CASE, real_lm, AuditConfig(methods=("loo", "ablation"),
                                                method_settings={"ablation": ABLATION}))
    assert both.cost["forward_passes"] > report.cost["forward_passes"]


def test_screen_without_ablation_scores_its_own_masks(real_lm, monkeypatch) -> None:
    monkeypatch.setattr(real_lm.scorer, "cache", MemoryScoreCache())
    config = AuditConfig(methods=("loo",), method_settings={
        "loo": {"screen_top": 1}, "ablation": ABLATION})
    report = run_audit(CASE, real_lm, config)
    screen = report.methods["loo"]["screen"]
    assert screen["units"] == ["guild"] and screen["mask_passes"] > 8
    assert report.cost["per_method"]["loo"]["forward_passes"] >= screen["mask_passes"]
