"""The gate as a team adopts it: examples/gate/ end to end, and the too-small-set warning.

The end-to-end test reads `relyscope gate` run through `relyscope.cli.main` on the packaged
model (attention + loo, nine questions; conftest's `example_gate_run`, shared with
tests/test_gate.py); the small set is the first three queries of that run's saved reports.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from relyscope.cli import main
from relyscope.gate import GateSettings, compare
from relyscope.gate.compare import MIN_QUERIES
from relyscope.gate.writers import gate_markdown, junit_xml
from relyscope.report_model import Report, UnitReport

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "gate"


def report(case_id: str, *, grounded: bool, top: float = 10.0, logprob: float = -5.0) -> Report:
    return Report(case_id=case_id, answer="a", answer_logprob=logprob, answer_tokens=10,
                  units=[UnitReport(id="s0", kind="source", reliance={"loo": top},
                                    verdict="relied")],
                  verdicts=["grounded"] if grounded else [])


def runs(n: int, drop: float, seed: int = 0) -> tuple[list[Report], list[Report]]:
    """Baseline all grounded; the candidate loses `drop` of them; reliance with noise."""
    rng = np.random.default_rng(seed)
    lost = int(round(drop * n))
    base = [report(f"q{i}", grounded=True, top=10 + float(rng.normal(0, 0.3)))
            for i in range(n)]
    cand = [report(f"q{i}", grounded=i >= lost, top=10 + float(rng.normal(0, 0.3)))
            for i in range(n)]
    return base, cand


# -- the warning, on numbers whose answer is known ------------------------------------------


def test_a_third_fewer_grounded_answers_on_twelve_queries_passes_but_warns():
    """The case from the issue: 12 queries, grounded down by 0.333, the gate passed silently."""
    settings = GateSettings.from_file(EXAMPLES / "thresholds.toml")
    result = compare(*runs(12, 1 / 3), settings)
    grounded = next(m for m in result.metrics if m.name == "grounded")
    assert grounded.difference == pytest.approx(-1 / 3)
    assert result.passed and not grounded.regressed  # the interval reaches past -0.10
    assert grounded.underpowered and grounded.half_width > grounded.tolerance
    assert grounded.detectable == pytest.approx(grounded.tolerance + grounded.half_width)
    assert grounded.detectable > 1 / 3  # the drop that happened is below what could fail
    assert any(w.startswith("grounded: the evaluation set (12 queries) is too small")
               for w in result.warnings)
    markdown = gate_markdown(result)
    assert "⚠️ evaluation set too small" in markdown and "ok ⚠️ too few queries" in markdown
    xml = ET.fromstring(junit_xml(result).split("?>", 1)[1])
    assert "too small" in xml.find("testcase[@name='grounded']/system-err").text
    assert result.to_dict()["warnings"] == result.warnings


def test_the_same_drop_on_enough_queries_fails_without_a_warning():
    settings = GateSettings.from_file(EXAMPLES / "thresholds.toml")
    result = compare(*runs(120, 1 / 3), settings)
    grounded = next(m for m in result.metrics if m.name == "grounded")
    assert grounded.regressed and not result.passed
    assert not grounded.underpowered and grounded.half_width < grounded.tolerance
    assert not any(w.startswith("grounded") for w in result.warnings)


def test_no_change_on_few_queries_still_warns_and_intervals_are_of_the_difference():
    base, _ = runs(MIN_QUERIES - 1, 0.0)
    result = compare(base, base)
    assert result.passed
    assert {m.name for m in result.metrics if m.underpowered} == {
        "grounded", "top_source_reliance", "idle_sources", "answer_logprob"}
    assert all(m.interval == (0.0, 0.0) for m in result.metrics)  # differences, all zero
    agreement = next(m for m in result.metrics if m.name == "answer_agreement")
    assert agreement.difference == 0.0 and not agreement.underpowered  # not gated: no tolerance
    changed = [r.model_copy(update={"answer": "b"}) for r in base]
    agreement = next(m for m in compare(base, changed).metrics if m.name == "answer_agreement")
    assert agreement.interval == (-1.0, -1.0) and agreement.difference == -1.0


# -- examples/gate end to end, on the packaged model -----------------------------------------


@pytest.mark.real_model
def test_the_example_fails_on_its_own_evaluation_set(example_gate_run):
    rows = (EXAMPLES / "eval.jsonl").read_text().splitlines()
    assert MIN_QUERIES - 1 <= len(rows) <= 12 and all(json.loads(r)["query"] for r in rows)
    result, markdown = example_gate_run.result, (example_gate_run.folder / "gate.md").read_text()
    assert result["queries"] == len(rows)
    assert example_gate_run.code == 1 and result["passed"] is False
    regressed = [m["name"] for m in result["metrics"] if m["regressed"]]
    assert regressed and "❌ regression" in markdown
    assert "❌ regression" in example_gate_run.stdout
    for metric in result["metrics"]:
        if metric["regressed"]:  # failed: its whole interval of the difference is beyond
            low, high = metric["interval"]
            assert (high < -metric["tolerance"] if metric["higher_is_better"]
                    else low > metric["tolerance"])


@pytest.mark.real_model
def test_a_too_small_evaluation_set_warns(example_gate_run, tmp_path, capsys):
    """The example's first three queries, from its saved runs: the warning depends on the
    reports, not on how they were made (the full run above made them with the model)."""
    sides = {}
    for side in ("baseline", "candidate"):
        lines = (example_gate_run.folder / "runs" / f"{side}.jsonl").read_text().splitlines()
        sides[side] = tmp_path / f"{side}.jsonl"
        sides[side].write_text("\n".join(lines[:3]) + "\n")
    out = tmp_path / "small"
    code = main(["gate", "--baseline-results", str(sides["baseline"]),
                 "--candidate-results", str(sides["candidate"]),
                 "--thresholds", str(EXAMPLES / "thresholds.toml"),
                 "--json", str(out.with_suffix(".json")),
                 "--markdown", str(out.with_suffix(".md"))])
    result, markdown = (json.loads(out.with_suffix(".json").read_text()),
                        out.with_suffix(".md").read_text())
    assert code in (0, 1)
    assert result["queries"] == 3 and result["warnings"]
    assert any("too small to detect" in w for w in result["warnings"])
    assert "⚠️" in markdown and "too few queries" in markdown
    assert "too small to detect" in capsys.readouterr().out
