"""Audit methods: provenance, leave-one-out, ablation, tool ablation, tracing, attention
knockout, head importance, gradient attributions, metrics.

Public face: `run_audit(case, lm, config) -> Report`, and the method registry
(relyscope.audits.registry). The names below load on first use (PEP 562): the method modules
import torch, and the registry's names (report columns, the CLI's --methods) are read without
it. The registry imports the built-in methods (and so registers them) when a method's class is
first needed: `run_audit`, `validate_config`, `registry.method_class`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from relyscope.audits import registry
from relyscope.audits.registry import validate_config

if TYPE_CHECKING:
    from relyscope.audits.ablation import ContextAblation
    from relyscope.audits.gradients import InputXGradient, IntegratedGradients
    from relyscope.audits.heads import HeadImportance
    from relyscope.audits.knockout import AttentionKnockout
    from relyscope.audits.learned import LearnedAttributor
    from relyscope.audits.loo import LeaveOneOut
    from relyscope.audits.method import AuditMethod, MethodSettings, NoSettings, Outcome
    from relyscope.audits.provenance import AttentionProvenance
    from relyscope.audits.runner import run_audit, validate_for_audit
    from relyscope.audits.tools import ToolOutputAblation
    from relyscope.audits.tracing import CausalTracing

__all__ = ["AttentionKnockout", "AttentionProvenance", "AuditMethod", "CausalTracing",
           "ContextAblation", "HeadImportance", "InputXGradient", "IntegratedGradients",
           "LearnedAttributor", "LeaveOneOut", "MethodSettings", "NoSettings", "Outcome",
           "ToolOutputAblation",
           "registry", "run_audit", "validate_config", "validate_for_audit"]

_LAZY = {
    "ContextAblation": "ablation", "InputXGradient": "gradients",
    "IntegratedGradients": "gradients", "HeadImportance": "heads",
    "AttentionKnockout": "knockout", "LearnedAttributor": "learned", "LeaveOneOut": "loo",
    "AuditMethod": "method", "MethodSettings": "method", "NoSettings": "method",
    "Outcome": "method", "AttentionProvenance": "provenance", "run_audit": "runner",
    "validate_for_audit": "runner", "ToolOutputAblation": "tools", "CausalTracing": "tracing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        registry.load_builtins()  # every built-in method is registered before one is used
        return getattr(import_module(f"relyscope.audits.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'relyscope.audits' has no attribute {name!r}")
