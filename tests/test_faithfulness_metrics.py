"""The report's faithfulness metrics, recomputed by hand on the real model.

A 4-source case is audited with attention and leave-one-out through the public `run_audit`;
every metric is then recomputed from variants scored independently (a second backend over the
same weights, plain unbatched scoring, its own cache) and must agree within 1e-4.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from relyscope.audits import run_audit
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, ScoringOptions, Variant

pytestmark = pytest.mark.real_model

PLAIN = ScoringOptions(layout="batch", reuse_prefix=False, target_only_logits=False,
                       max_batch_size=1)
TOL = 1e-4


def four_source_case() -> Case:
    """The bundled example without its tool call and its last passage, with a fixed answer."""
    data = json.loads((resources.files("relyscope") / "data" / "example_case.json").read_text())
    data["sources"] = data["sources"][:4]
    data["tool_calls"] = []
    data["answer"] = "The Zelk guild was founded by Anna Roth."
    return Case.from_dict(data)


def by_rank(scores: dict[str, float]) -> list[str]:
    """Highest first; ties keep the units' order."""
    return sorted(scores, key=lambda uid: -scores[uid])


def spearman_by_hand(x: list[float], y: list[float]) -> float:
    def ranks(values: list[float]) -> np.ndarray:
        values_arr = np.asarray(values)
        out = np.empty(len(values_arr))
        for i, v in enumerate(values_arr):  # average rank among ties, 1-based
            out[i] = (np.sum(values_arr < v) + 1 + np.sum(values_arr <= v)) / 2
        return out

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry)))


@pytest.fixture(scope="module")
def audited(real_lm):
    case = four_source_case()
    report = run_audit(case, real_lm, AuditConfig(methods=("attention", "loo")))
    hand = CausalLM(real_lm.model, real_lm.tokenizer, model_id="hand", revision="plain",
                    options=PLAIN)
    return case, report, hand


def test_top_k_drop_comprehensiveness_and_sufficiency_match_hand_scoring(audited):
    case, report, hand = audited
    renderer = hand.renderer(case)
    units = [u.id for u in renderer.units]
    assert units == [s.id for s in case.sources]  # four sources, no tool unit
    scores = {"attention": {u.id: u.provenance["attention"] for u in report.units},
              "loo": {u.id: u.reliance["loo"] for u in report.units}}

    def total(variant: Variant) -> float:
        return hand.score([renderer.render(variant)])[0].total

    full = total(Variant())
    assert report.answer_logprob == pytest.approx(full, abs=TOL)
    for uid in units:  # the ranking itself: leave-one-out by hand
        assert scores["loo"][uid] == pytest.approx(full - total(Variant.without([uid])), abs=TOL)
    for method, method_scores in scores.items():
        order = by_rank(method_scores)
        metrics = report.faithfulness[method]
        drops, kept = {}, {}
        for k in (1, 3):
            drops[k] = full - total(Variant.without(order[:k]))
            kept[k] = full - total(Variant.without([u for u in units if u not in order[:k]]))
            assert metrics["topk_drop"][str(k)] == pytest.approx(drops[k], abs=TOL), (method, k)
        assert metrics["comprehensiveness"] == pytest.approx((drops[1] + drops[3]) / 2, abs=TOL)
        assert metrics["sufficiency"] == pytest.approx((kept[1] + kept[3]) / 2, abs=TOL)
    # the planted source is loo's top unit, so removing it costs the answer many nats
    assert by_rank(scores["loo"])[0] == "doc-zelk-guild"
    assert report.faithfulness["loo"]["topk_drop"]["1"] > 5


def test_rank_correlation_with_attention_matches_a_hand_spearman(audited):
    case, report, _ = audited
    ids = [s.id for s in case.sources]
    attention = [report.unit(uid).provenance["attention"] for uid in ids]
    loo = [report.unit(uid).reliance["loo"] for uid in ids]
    want = spearman_by_hand(attention, loo)
    got = report.faithfulness["loo"]["spearman_vs_attention"]
    assert got == pytest.approx(want, abs=TOL)
    assert "spearman_vs_attention" not in report.faithfulness["attention"]
