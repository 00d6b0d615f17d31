"""The input budget's token half: count a case's tokens as the model will see them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.limits import InputBudget, check_chars, check_tokens
from relyscope.models.render import Renderer

if TYPE_CHECKING:
    from relyscope.models.backend import CausalLM


def count_case_tokens(tokenizer: Any, case: Case, config: AuditConfig) -> int:
    """Tokens of the full prompt plus the answer (or the generation budget without one)."""
    renderer = Renderer(tokenizer, case, granularity=config.granularity,
                        tool_mode=config.tool_mode)
    rendered = renderer.render(target=case.answer or " ")
    answer = len(rendered.target_ids) if case.answer else case.decoding.max_new_tokens
    return len(rendered.prompt_ids) + answer


def check_input_budget(case: Case, lm: CausalLM, config: AuditConfig,
                       budget: InputBudget | None = None) -> None:
    """Characters, then tokens, against the model's context; raises OverBudget."""
    context = lm.info.max_positions
    check_chars(case, context, budget)
    check_tokens(case, count_case_tokens(lm.tokenizer, case, config), context)
