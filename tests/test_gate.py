"""The gate's statistics and outputs, on reports built to a known shape (no model needed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from relyscope.cli import main
from relyscope.gate import GateSettings, compare, paired_bootstrap
from relyscope.gate.writers import gate_markdown, junit_xml
from relyscope.report_model import Report, UnitReport
from relyscope.testing import assert_reliance


def make_report(case_id: str, *, grounded: bool, top: float, answer: str = "a",
                logprob: float = -5.0) -> Report:
    units = [UnitReport(id="s0", kind="source", reliance={"loo": top},
                        verdict="relied" if top >= 2 else "unused"),
             UnitReport(id="s1", kind="source", reliance={"loo": 0.1}, verdict="unused")]
    return Report(case_id=case_id, answer=answer, answer_logprob=logprob, answer_tokens=10,
                  units=units, verdicts=["grounded"] if grounded else ["parametric"])


def run_of(n: int, *, grounded_share: float, top: float, seed: int, noise: float = 0.5):
    rng = np.random.default_rng(seed)
    return [make_report(f"q{i}", grounded=i < grounded_share * n,
                        top=top + float(rng.normal(0, noise))) for i in range(n)]


def test_a_rerun_with_equal_numbers_passes_with_zero_differences():
    base = run_of(40, grounded_share=0.8, top=10, seed=1)
    rerun = [Report.from_dict(json.loads(json.dumps(r.to_dict()))) for r in base]  # own objects
    result = compare(base, rerun)
    assert result.passed
    assert {m.name: m.difference for m in result.metrics} == {
        "grounded": 0.0, "top_source_reliance": 0.0, "idle_sources": 0.0,
        "answer_logprob": 0.0, "answer_agreement": 0.0}


def test_a_small_shift_is_measured_exactly_and_passes_within_tolerance():
    base = run_of(40, grounded_share=0.8, top=10, seed=1)
    shifted = run_of(40, grounded_share=0.8, top=9.6, seed=1)  # the same draws, 0.4 nats lower
    for report in shifted:
        report.answer_logprob -= 1.0  # 0.1 nats per token over 10 tokens
    result = compare(base, shifted)
    by_name = {m.name: m for m in result.metrics}
    assert by_name["top_source_reliance"].difference == pytest.approx(-0.4)
    assert by_name["answer_logprob"].difference == pytest.approx(-0.1)
    assert by_name["grounded"].difference == 0.0
    assert result.passed  # both within their tolerances (1.0 nats, 0.25 nats per token)
    assert not compare(base, run_of(40, grounded_share=0.8, top=8.5, seed=1)).passed


def test_noise_alone_does_not_fail_the_gate():
    base = run_of(40, grounded_share=0.8, top=10, seed=1)
    cand = run_of(40, grounded_share=0.8, top=10, seed=2)  # same distribution, other draw
    assert compare(base, cand).passed


def test_a_real_drop_fails_with_the_numbers():
    base = run_of(40, grounded_share=0.9, top=10, seed=1)
    cand = run_of(40, grounded_share=0.3, top=3, seed=2)
    result = compare(base, cand)
    assert not result.passed
    failed = {m.name for m in result.metrics if m.regressed}
    assert {"grounded", "top_source_reliance"} <= failed
    xml = ET.fromstring(junit_xml(result).split("?>", 1)[1])
    assert xml.get("failures") == str(len(failed))
    failure = xml.find("testcase[@name='grounded']/failure")
    assert failure is not None and "baseline 0.900" in failure.get("message")
    assert "❌ regression" in gate_markdown(result)


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.normal(1.0, 1.0, 20)
    large = rng.normal(1.0, 1.0, 400)
    a = paired_bootstrap(small, resamples=2000, confidence=0.95, seed=0)
    b = paired_bootstrap(large, resamples=2000, confidence=0.95, seed=0)
    assert a[0] < small.mean() < a[1]
    assert (b[1] - b[0]) < (a[1] - a[0])


def test_thresholds_file_is_validated(tmp_path):
    good = tmp_path / "t.toml"
    good.write_text('confidence = 0.9\n[tolerances]\ngrounded = 0.2\nanswer_agreement = 0.5\n')
    settings = GateSettings.from_file(good)
    assert settings.tolerances["grounded"] == 0.2 and settings.confidence == 0.9
    bad = tmp_path / "bad.json"
    bad.write_text('{"tolerances": {"groundedness": 1}}')
    with pytest.raises(ValueError, match="unknown metric 'groundedness'"):
        GateSettings.from_file(bad)


def _write(path, reports):
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in reports))


def test_cli_exit_codes_and_outputs(tmp_path, capsys):
    base, cand = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write(base, run_of(30, grounded_share=0.9, top=10, seed=1))
    _write(cand, run_of(30, grounded_share=0.2, top=2, seed=2))
    junit, md, js = tmp_path / "g.xml", tmp_path / "g.md", tmp_path / "g.json"
    code = main(["gate", "--baseline-results", str(base), "--candidate-results", str(cand),
                 "--junit", str(junit), "--markdown", str(md), "--json", str(js)])
    assert code == 1
    assert json.loads(js.read_text())["passed"] is False
    assert "<failure" in junit.read_text() and "regression" in md.read_text()
    assert main(["gate", "--baseline-results", str(base), "--candidate-results",
                 str(base)]) == 0
    assert main(["gate", "--baseline-results", str(base)]) == 2
    assert main(["gate", "--baseline-results", str(tmp_path / "none.jsonl"),
                 "--candidate-results", str(base)]) == 2


def test_assert_reliance_passes_and_fails_readably():
    report = make_report("c", grounded=True, top=9)
    assert assert_reliance(report, grounded=True, relied_on=["s0"], not_relied_on=["s1"],
                           min_reliance=5) is report
    with pytest.raises(AssertionError) as info:
        assert_reliance(report, relied_on=["s1"], grounded=False)
    message = str(info.value)
    assert "expected the answer to rely on 's1'" in message
    assert "expected not grounded" in message
    assert "top units by loo: s0, s1" in message


def test_progress_off_a_terminal_is_plain_lines_first_last_and_at_most_one_per_interval():
    import io

    from relyscope.gate.runs import progress

    log = io.StringIO()  # not a TTY, as stderr in CI: tqdm (disable=None) printed nothing
    assert list(progress(range(50), "baseline", stream=log, every_s=3600)) == list(range(50))
    assert log.getvalue().splitlines() == [  # the first and the last query, no line per query
        "baseline: 1/50 queries, 0 s", "baseline: 50/50 queries, 0 s"]
    log = io.StringIO()
    assert list(progress(range(4), "candidate", stream=log, every_s=0)) == list(range(4))
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == [
        f"candidate: {i}/4 queries" for i in range(1, 5)]


# -- on the real model: configurations run through the pipeline ---------------------------------

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "gate"


@pytest.fixture(scope="module")
def eval_rows():
    """examples/gate/eval.jsonl: 9 queries spread over the demo corpus (every 6th of
    relyscope/data/demo_eval.jsonl; 6 leave the interval too wide)."""
    from relyscope.gate.runs import read_eval

    return read_eval(EXAMPLES / "eval.jsonl")


@pytest.mark.real_model
def test_degraded_candidate_fails_and_an_identical_rerun_passes_from_the_cache(
        example_gate_run, eval_rows, real_lm):
    """The degraded candidate of the shared example run fails; the baseline re-run (three of
    its queries) in this process, on the score cache that run filled, scores nothing anew and
    passes."""
    from relyscope.gate.runs import run_configuration
    from relyscope.models import CausalLM
    from relyscope.models.cache import SqliteScoreCache
    from relyscope.report import read_reports

    runs = example_gate_run.folder / "runs"
    baseline = read_reports(runs / "baseline.jsonl")
    degraded = read_reports(runs / "candidate.jsonl")
    assert [r.case_id for r in baseline] == [row["id"] for row in eval_rows]
    settings = GateSettings.from_file(EXAMPLES / "thresholds.toml")
    bad = compare(baseline, degraded, settings)
    assert not bad.passed
    failure = ET.fromstring(junit_xml(bad).split("?>", 1)[1]).find(".//failure")
    assert failure is not None and "baseline" in failure.get("message")

    fresh = CausalLM(real_lm.model, real_lm.tokenizer, model_id=real_lm.info.id,
                     revision=real_lm.info.revision,
                     cache=SqliteScoreCache(example_gate_run.cache))
    again = run_configuration(eval_rows[:3], EXAMPLES / "baseline.toml", fresh)
    assert compare(baseline[:3], again, settings).passed
    assert [r.answer for r in again] == [r.answer for r in baseline[:3]]
    scoring_passes = fresh.cost.cache_misses
    assert scoring_passes == 0 and fresh.cost.cache_hits > 0  # the re-run reused every score


def _with_ablation(tmp_path, seed: int):
    """baseline.toml plus context ablation with few masks (3 sources: 8 possible masks, 8
    random draws), so the seed decides which masks are fit."""
    path = tmp_path / f"ablation-seed{seed}.toml"
    text = (EXAMPLES / "baseline.toml").read_text()
    text = text.replace("top_k = 3", f"top_k = 3\nseed = {seed}")
    text = text.replace('methods = "attention,loo"', 'methods = "attention,loo,ablation"\n'
                                                     "ablations = 8")
    path.write_text(text.replace("../../relyscope", str(EXAMPLES.parent.parent / "relyscope")))
    return path


@pytest.mark.real_model
def test_a_reseeded_ablation_run_changes_the_ablation_scores_and_nothing_else(
        eval_rows, real_lm, tmp_path):
    from relyscope.gate.runs import run_configuration
    from relyscope.models import CausalLM

    lm = CausalLM(real_lm.model, real_lm.tokenizer, model_id=real_lm.info.id,
                  revision="gate-reseed")
    rows = eval_rows[:2]  # 2 x 3 units: a reseed changes some weight (changed > 0)
    seeded = run_configuration(rows, _with_ablation(tmp_path, 0), lm)
    reseeded = run_configuration(rows, _with_ablation(tmp_path, 5), lm)
    changed = 0
    for a, b in zip(seeded, reseeded, strict=True):
        assert (a.methods["ablation"]["seed"], b.methods["ablation"]["seed"]) == (0, 5)
        assert a.answer == b.answer
        assert [u.id for u in a.units] == [u.id for u in b.units]
        for ua, ub in zip(a.units, b.units, strict=True):
            assert ua.reliance["loo"] == ub.reliance["loo"]  # the seed does not touch these
            assert ua.provenance["attention"] == ub.provenance["attention"]
            changed += ua.reliance["ablation"] != ub.reliance["ablation"]
    assert changed > 0  # ... and does change the surrogate's weights
    settings = GateSettings.from_file(EXAMPLES / "thresholds.toml")
    result = compare(seeded, reseeded, settings)
    by_name = {m.name: m.difference for m in result.metrics}
    assert by_name["top_source_reliance"] == 0.0 and by_name["answer_logprob"] == 0.0
    assert result.passed


@pytest.mark.real_model
def test_the_gate_command_runs_both_configurations_and_writes_every_output(
        example_gate_run, tmp_path, capsys):
    """The shared example run (`relyscope gate --eval ... --save-results --junit --markdown
    --json`, baseline vs degraded) wrote every output; the baseline against itself passes
    (two of its queries, their scores from that run's cache)."""
    folder = example_gate_run.folder
    chosen = (EXAMPLES / "eval.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in chosen]
    assert example_gate_run.code == 1
    verdict = example_gate_run.result
    assert verdict["passed"] is False
    regressed = {m["name"] for m in verdict["metrics"] if m["regressed"]}
    assert regressed and regressed <= {"grounded", "top_source_reliance", "idle_sources",
                                       "answer_logprob"}
    xml = ET.fromstring((folder / "gate.xml").read_text().split("?>", 1)[1])
    assert xml.get("failures") == str(len(regressed))
    assert "regression" in (folder / "gate.md").read_text()
    for side in ("baseline", "candidate"):
        lines = (folder / "runs" / f"{side}.jsonl").read_text().splitlines()
        assert [json.loads(line)["case_id"] for line in lines] == ids
    assert "forward passes" in example_gate_run.stderr

    eval_file, js = tmp_path / "eval.jsonl", tmp_path / "gate.json"
    eval_file.write_text("\n".join(chosen[:2]) + "\n")
    same = main(["gate", "--eval", str(eval_file),
                 "--thresholds", str(EXAMPLES / "thresholds.toml"),
                 "--cache", str(example_gate_run.cache),
                 "--baseline", str(EXAMPLES / "baseline.toml"),
                 "--candidate", str(EXAMPLES / "baseline.toml"), "--json", str(js)])
    assert same == 0 and json.loads(js.read_text())["passed"] is True
    assert "forward passes" in capsys.readouterr().err
