"""The runner's plumbing on a tiny random model: fast, no claims about what a model relies on."""

from __future__ import annotations

import json

import pytest

from relyscope.audits import AuditMethod, registry, run_audit
from relyscope.case import CaseError
from relyscope.config import AuditConfig
from relyscope.report import markdown, render_html
from tests.conftest import zelk_case

SMALL = AuditConfig(method_settings={"ablation": {"ablations": 8, "lds_masks": 4},
                                     "tracing": {"samples": 1, "top_units": 1, "window": 1}})


def test_every_method_runs_and_the_report_has_the_documented_keys(tiny_lm):
    report = run_audit(zelk_case(), tiny_lm, SMALL)
    data = json.loads(json.dumps(report.to_dict()))
    for key in ("case_id", "answer", "answer_logprob", "partial", "units", "verdicts",
                "faithfulness", "cost", "settings"):
        assert key in data
    assert data["partial"] is False and not data["errors"]
    unit = next(u for u in data["units"] if u["id"] == "d1")
    assert set(unit["reliance"]) == {"loo", "ablation", "tracing", "tools"}
    assert unit["reliance"]["tools"] is None  # a source has no tool-ablation score
    assert {"attention", "attention_rollout", "attention_last"} <= set(unit["provenance"])
    tool = next(u for u in data["units"] if u["id"] == "call_1")
    assert tool["reliance"]["tools"] is not None
    assert data["faithfulness"]["loo"]["topk_drop"]["1"] is not None
    assert data["cost"]["forward_passes"] > 0
    assert data["settings"]["config"]["method_settings"]["ablation"]["ablations"] == 8
    assert data["settings"]["model"]["id"] == "tiny-random-llama"
    assert data["methods"]["tracing"]["mode"] == "gaussian"
    assert data["methods"]["attention"]["label"] == "provenance"
    assert len(data["methods"]["tracing"]["layer_profiles"]) == 1


def test_loo_agrees_with_scoring_by_hand(tiny_lm):
    from relyscope.models import Variant

    case = zelk_case()
    report = run_audit(case, tiny_lm, AuditConfig(methods=("loo",)))
    renderer = tiny_lm.renderer(case)
    full, without = tiny_lm.score([renderer.render(), renderer.render(Variant.without(["d3"]))])
    assert report.unit("d3").reliance["loo"] == pytest.approx(full.total - without.total,
                                                              abs=1e-6)


def test_sentence_granularity_scores_sentences(tiny_lm):
    report = run_audit(zelk_case(), tiny_lm,
                       AuditConfig(methods=("loo", "ablation"), granularity="sentence",
                                   ablations=8, lds_masks=0))
    assert "d1#0" in {u.id for u in report.units}
    assert report.unit("d1#0").parent == "d1"


def test_progress_events_and_a_failing_method_is_an_event(tiny_lm):
    events = []
    with registry.scoped():  # the real tracing method is back after the block
        registry.unregister("tracing")

        class Broken(AuditMethod):
            name = "tracing"
            kind = "localisation"
            priority = 40

            def compute(self, ctx, settings):
                raise RuntimeError("boom")

        report = run_audit(zelk_case(), tiny_lm, AuditConfig(methods=("loo", "tracing")),
                           progress=events.append)
    kinds = [(e["event"], e.get("method")) for e in events]
    assert ("method_finished", "loo") in kinds
    assert ("method_failed", "tracing") in kinds
    assert kinds[-1] == ("report", None)
    assert report.errors["tracing"] == "RuntimeError: boom"
    assert report.unit("d1").reliance["loo"] is not None


def test_a_deadline_in_the_past_cuts_cleanly(tiny_lm):
    import time

    with pytest.raises(ValueError, match="budget too small"):
        run_audit(zelk_case(), tiny_lm, SMALL, deadline=time.monotonic() - 1)


def test_unknown_method_is_a_named_error():
    config = AuditConfig.from_dict({"methods": "loo,shap"})  # names are checked by the registry
    with pytest.raises(CaseError) as info:
        registry.validate_config(config)
    assert info.value.field == "methods[1]"


def test_reports_render_as_markdown_and_self_contained_html(tiny_lm):
    report = run_audit(zelk_case(), tiny_lm, SMALL)
    md = markdown([report])
    assert "| d1 | source |" in md
    html = render_html([report])
    assert "<script" not in html and "http" not in html.split("<body>")[1]
    for unit in report.units:
        assert f"<td>{unit.id}</td>" in html
    assert "attention share (provenance)" in html
    assert "Causal tracing" in html


def test_cli_audit_writes_json_and_html(tmp_path, real_lm, capsys):
    from relyscope.cli import main

    case_path = tmp_path / "case.json"
    case_path.write_text(json.dumps(zelk_case().to_dict()))
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    code = main(["audit", str(case_path), "--methods", "attention,loo", "--out", str(out),
                 "--html", str(html)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["case_id"] == "zelk"
    assert data["units"][1]["id"] == "d1"
    assert html.read_text().startswith("<!doctype html>")


def test_cli_names_the_bad_field(tmp_path, capsys):
    from relyscope.cli import main

    case_path = tmp_path / "bad.json"
    case_path.write_text(json.dumps({"id": "x", "query": "q", "sources": [
        {"id": "a", "text": "t"}, {"id": "a", "text": "u"}]}))
    assert main(["audit", str(case_path)]) == 2
    assert "sources[1].id" in capsys.readouterr().err
