"""Model backends: loading, chat-template rendering with unit spans, batched scoring, hooks."""

from relyscope.models.backend import CausalLM, ModelInfo
from relyscope.models.gradients import GradientAttribution, GradientMethod
from relyscope.models.hooks import Edits, Span
from relyscope.models.knockout import Knockout
from relyscope.models.loading import ModelOptions as ModelOptions
from relyscope.models.render import FULL, Rendered, Renderer, Variant, placeholder_for
from relyscope.models.scoring import Cost, ScoreItem, ScoringOptions, TargetScore

__all__ = ["FULL", "CausalLM", "Cost", "Edits", "GradientAttribution", "GradientMethod",
           "Knockout", "ModelInfo", "Rendered", "Renderer", "ScoreItem", "ScoringOptions", "Span",
           "TargetScore", "Variant", "placeholder_for"]
