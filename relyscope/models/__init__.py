"""Model backends: loading, chat-template rendering with unit spans, batched scoring, hooks.

The names below load on first use (PEP 562), so that importing a light module of this package
(`relyscope.models.loading` for the CLI's flags, `relyscope.models.packaged`) does not import
torch and transformers: `relyscope --help` and `relyscope report` start without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relyscope.models.answer_attention import AnswerAttention
    from relyscope.models.backend import CausalLM, ModelInfo
    from relyscope.models.gradients import GradientAttribution, GradientMethod
    from relyscope.models.hooks import Edits, Span
    from relyscope.models.knockout import Knockout
    from relyscope.models.loading import ModelOptions as ModelOptions
    from relyscope.models.render import FULL, Rendered, Renderer, Variant, placeholder_for
    from relyscope.models.scoring import Cost, ScoreItem, ScoringOptions, TargetScore

__all__ = ["FULL", "AnswerAttention", "CausalLM", "Cost", "Edits", "GradientAttribution",
           "GradientMethod", "Knockout", "ModelInfo", "Rendered", "Renderer", "ScoreItem",
           "ScoringOptions", "Span", "TargetScore", "Variant", "placeholder_for"]

_LAZY = {
    "AnswerAttention": "answer_attention", "CausalLM": "backend", "ModelInfo": "backend",
    "GradientAttribution": "gradients", "GradientMethod": "gradients",
    "Edits": "hooks", "Span": "hooks", "Knockout": "knockout", "ModelOptions": "loading",
    "FULL": "render", "Rendered": "render", "Renderer": "render", "Variant": "render",
    "placeholder_for": "render",
    "Cost": "scoring", "ScoreItem": "scoring", "ScoringOptions": "scoring",
    "TargetScore": "scoring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"relyscope.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'relyscope.models' has no attribute {name!r}")
