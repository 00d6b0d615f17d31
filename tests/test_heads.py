"""Head importance on the real packaged model: a bounded layer x head map for the top unit."""

from __future__ import annotations

from pathlib import Path

import pytest

import relyscope
from relyscope.audits import run_audit
from relyscope.case import load_case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM
from relyscope.report import html

pytestmark = pytest.mark.real_model

EXAMPLE = Path(relyscope.__file__).parent / "data" / "example_case.json"
PLANTED = "doc-zelk-guild"


def test_head_map_of_the_planted_source(real_lm: CausalLM) -> None:
    case = load_case(EXAMPLE).with_answer("The Zelk guild was founded by Anna Roth.")
    window = 10
    config = AuditConfig(methods=("heads",), method_settings={"heads": {"window": window}})
    report = run_audit(case, real_lm, config)
    assert not report.errors and not report.partial
    extras = report.methods["heads"]
    assert list(extras["maps"]) == [PLANTED]  # the top unit by leave-one-out
    entry = extras["maps"][PLANTED]
    n_layers, n_heads = real_lm.num_layers, real_lm.num_heads
    windows = -(-n_layers // window)
    assert [w["layers"] for w in entry["windows"]] == [
        [a, min(n_layers, a + window) - 1] for a in range(0, n_layers, window)]
    best = max(entry["windows"], key=lambda w: w["drop"])
    assert best["drop"] > 0
    assert entry["layers"] == list(range(best["layers"][0], best["layers"][1] + 1))
    assert len(entry["drops"]) == len(entry["layers"])
    assert all(len(row) == n_heads for row in entry["drops"])
    # bounded cost: the window sweep plus one window's heads, the removals scored alongside
    passes = report.cost["per_method"]["heads"]["forward_passes"]
    assert windows + window * n_heads <= passes <= windows + window * n_heads + len(report.units)
    score = report.unit(PLANTED).reliance["heads"]
    assert score == max(d for row in entry["drops"] for d in row)
    assert all(u.reliance["heads"] is None for u in report.units if u.id != PLANTED)
    page = html.render_html([report])
    assert "Head importance" in page and f"L{entry['layers'][0]}" in page
