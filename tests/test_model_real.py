"""Claims about the real packaged model: loading, caching, and a planted fact."""

import pytest

from relyscope.models import CausalLM, Variant
from relyscope.models.packaged import packaged_model_dir
from tests.conftest import zelk_case

pytestmark = pytest.mark.real_model


def test_packaged_model_is_cached_as_safetensors(real_lm):
    folder, revision = packaged_model_dir()
    assert (folder / "model.safetensors").is_file()
    assert real_lm.info.revision == revision
    assert real_lm.info.num_layers == 30


def test_removing_the_fact_source_drops_the_answer_far_more_than_any_other(real_lm):
    case = zelk_case()
    renderer = real_lm.renderer(case)
    full, *without = real_lm.score(
        [renderer.render()] + [renderer.render(Variant.without([u.id])) for u in renderer.units])
    drops = {u.id: full.total - s.total for u, s in zip(renderer.units, without, strict=True)}
    fact = drops.pop("d1")
    assert fact > 10.0
    assert fact > 5 * max(abs(d) for d in drops.values())


def test_generated_answer_states_the_planted_fact(real_lm):
    case = real_lm.answer(zelk_case(answer=None))
    assert "Anna Roth" in case.answer


def test_demo_runs_a_full_audit_and_writes_the_html(capsys, tmp_path, monkeypatch):
    import json

    from relyscope.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--ablations", "16", "--tracing-samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "Anna Roth" in out
    report = json.loads((tmp_path / "out" / "demo-report.json").read_text())
    assert (tmp_path / "out" / "demo-report.html").is_file()
    assert report["verdicts"] == ["grounded"]
    relied = [u["id"] for u in report["units"] if u["verdict"] in {"relied", "relied-not-attended"}]
    assert relied == ["doc-zelk-guild"]


def test_unknown_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot load model"):
        CausalLM.load(str(tmp_path / "nope"))
