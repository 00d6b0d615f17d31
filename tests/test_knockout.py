"""Attention knockout on the real packaged model: exactness, the planted source, the method."""

from __future__ import annotations

from pathlib import Path

import pytest

import relyscope
from relyscope.audits import run_audit
from relyscope.case import CaseError, load_case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM, Knockout, Variant

pytestmark = pytest.mark.real_model

EXAMPLE = Path(relyscope.__file__).parent / "data" / "example_case.json"
ANSWER = "The Zelk guild was founded by Anna Roth."
PLANTED = "doc-zelk-guild"


def _rendered(lm: CausalLM):
    case = load_case(EXAMPLE).with_answer(ANSWER)
    return lm.renderer(case).render(Variant())


def test_knockout_of_nothing_equals_the_plain_score(real_lm: CausalLM) -> None:
    rendered = _rendered(real_lm)
    plain = real_lm.score([rendered])[0].total
    start, end = rendered.target_token_span
    nothing = [Knockout((start - 1, end)),  # no key spans
               Knockout((start - 1, end), ((5, 5),)),  # an empty key span
               Knockout((start - 1, end), (rendered.unit_token_spans[PLANTED],), layers=())]
    before = real_lm.cost.forward_passes
    values = real_lm.knockout_logprobs(rendered.input_ids, len(rendered.target_ids), nothing)
    assert real_lm.cost.forward_passes - before == len(nothing)
    for value in values.tolist():
        assert abs(value - plain) < 1e-4
    with real_lm.eager_attention():  # the float mask of eager attention is exact too
        eager = real_lm.knockout_logprobs(rendered.input_ids, len(rendered.target_ids),
                                          nothing[:1])
    assert abs(float(eager[0]) - plain) < 1e-4


def test_knocking_out_the_planted_source_drops_the_answer(real_lm: CausalLM) -> None:
    rendered = _rendered(real_lm)
    plain = real_lm.score([rendered])[0].total
    start, end = rendered.target_token_span
    spans = rendered.unit_token_spans
    knockouts = [Knockout((start - 1, end), (spans[uid],)) for uid in spans]
    knockouts.append(Knockout((start - 1, end), (spans[PLANTED],), layers=(0,), heads=(0,)))
    values = real_lm.knockout_logprobs(rendered.input_ids, len(rendered.target_ids), knockouts)
    drops = {uid: plain - float(v) for uid, v in zip(spans, values, strict=False)}
    assert drops[PLANTED] > 5.0
    assert max(drops, key=lambda u: drops[u]) == PLANTED
    for uid, drop in drops.items():
        if uid != PLANTED:
            assert drop < drops[PLANTED] / 3
    one_head = plain - float(values[-1])
    assert abs(one_head) < drops[PLANTED]  # one head in one layer carries less than all


def test_knockout_method_in_an_audit(real_lm: CausalLM) -> None:
    case = load_case(EXAMPLE).with_answer(ANSWER)
    config = AuditConfig(methods=("loo", "knockout"), claims=[[0, len(ANSWER)], [15, len(ANSWER)]],
                         method_settings={"knockout": {"batch": 7}})
    report = run_audit(case, real_lm, config)
    scores = {u.id: u.reliance["knockout"] for u in report.units}
    assert max(scores, key=lambda u: scores[u] or 0.0) == PLANTED
    assert scores[PLANTED] > 5.0
    extras = report.methods["knockout"]
    assert extras["layers"] == [0, real_lm.num_layers - 1]
    assert abs(report.answer_logprob - extras["logprob_knocked"][PLANTED]
               - scores[PLANTED]) < 1e-9
    assert report.cost["per_method"]["knockout"]["forward_passes"] == len(report.units)
    # per claim, from the same passes: a claim of the whole answer has the answer's drops; a
    # claim of its second half ("was founded by Anna Roth.") has its own
    whole, half = (claim.scores["knockout"] for claim in report.claims)
    for uid, score in scores.items():
        assert abs(whole[uid] - score) < 1e-4
    assert half[PLANTED] > 5.0 and half != whole
    assert report.cost["claims"]["forward_passes"] == 0
    # a layer window later than the model's depth is refused, naming the setting
    bad = AuditConfig(methods=("knockout",), method_settings={"knockout": {"layers": [0, 99]}})
    failed = run_audit(case, real_lm, bad)
    assert "knockout" in failed.errors and "method_settings.knockout.layers" in failed.errors[
        "knockout"]


def test_knockout_settings_are_validated() -> None:
    with pytest.raises(CaseError) as err:
        from relyscope.audits.registry import validate_config
        validate_config(AuditConfig(methods=("knockout",),
                                    method_settings={"knockout": {"layers": [3, 1]}}))
    assert err.value.field.startswith("method_settings.knockout")
