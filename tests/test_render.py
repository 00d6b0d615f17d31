"""Rendering through the real model's chat template keeps exact unit spans."""

import pytest

from relyscope.models import Variant, placeholder_for
from tests.conftest import zelk_case


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("tool_mode", ["inline", "tool_role"])
@pytest.mark.parametrize("granularity", ["source", "sentence"])
def test_unit_token_spans_decode_to_the_unit_text(real_lm, tool_mode, granularity):
    case = zelk_case()
    renderer = real_lm.renderer(case, tool_mode=tool_mode, granularity=granularity)
    rendered = renderer.render()
    assert set(rendered.unit_token_spans) == {u.id for u in renderer.units}
    for unit in renderer.units:
        start, end = rendered.unit_token_spans[unit.id]
        decoded = real_lm.tokenizer.decode(rendered.input_ids[start:end])
        assert _squash(decoded) == _squash(unit.text), unit.id
        char_start, char_end = rendered.unit_char_spans[unit.id]
        assert rendered.prompt[char_start:char_end] == unit.text


def test_default_tool_mode_for_smollm_is_inline(real_lm):
    rendered = real_lm.renderer(zelk_case()).render()
    assert rendered.tool_mode == "inline"
    assert 'get_temperature({"city": "Mirel"}) returned 18 degrees Celsius' in rendered.prompt
    assert rendered.prompt.index("Tool results:") < rendered.prompt.index("Question:")


def test_tool_role_mode_puts_output_in_a_tool_turn(real_lm):
    rendered = real_lm.renderer(zelk_case(), tool_mode="tool_role").render()
    assert "<|im_start|>tool\n18 degrees Celsius<|im_end|>" in rendered.prompt


def test_target_is_the_answer_tokens(real_lm):
    case = zelk_case()
    rendered = real_lm.renderer(case).render()
    start, end = rendered.target_token_span
    assert end == len(rendered.input_ids)
    assert real_lm.tokenizer.decode(rendered.input_ids[start:end]) == case.answer
    assert rendered.prompt.endswith("<|im_start|>assistant\n")


def test_removal_re_renders_and_keeps_other_spans(real_lm):
    renderer = real_lm.renderer(zelk_case())
    rendered = renderer.render(Variant.without(["d1", "call_1"]))
    assert "Zelk guild was founded" not in rendered.prompt
    assert "Tool results:" not in rendered.prompt  # no empty section left behind
    assert set(rendered.unit_token_spans) == {"d0", "d2", "d3", "d4"}
    everything = renderer.render(Variant.without([u.id for u in renderer.units]))
    assert "Context:" not in everything.prompt
    assert "Question: Who founded the Zelk guild?" in everything.prompt


def test_placeholder_override_keeps_the_span(real_lm):
    renderer = real_lm.renderer(zelk_case())
    text = renderer.case.sources[1].text
    rendered = renderer.render(Variant.replacing({"d1": placeholder_for(text)}))
    start, end = rendered.unit_char_spans["d1"]
    assert rendered.prompt[start:end] == placeholder_for(text)
    assert len(placeholder_for(text).split()) == len(text.split())


def test_error_status_override_renders_as_failure(real_lm):
    renderer = real_lm.renderer(zelk_case())
    rendered = renderer.render(Variant.replacing({"call_1": "timeout"}, {"call_1": "error"}))
    assert 'get_temperature({"city": "Mirel"}) failed with timeout' in rendered.prompt
