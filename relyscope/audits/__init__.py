"""Audit methods: provenance, leave-one-out, ablation, tool ablation, tracing, attention
knockout, head importance, gradient attributions, metrics.

Public face: `run_audit(case, lm, config) -> Report`, and the method registry
(relyscope.audits.registry). Importing this package registers the built-in methods.
"""

from relyscope.audits import registry
from relyscope.audits.ablation import ContextAblation
from relyscope.audits.gradients import InputXGradient, IntegratedGradients
from relyscope.audits.heads import HeadImportance
from relyscope.audits.knockout import AttentionKnockout
from relyscope.audits.learned import LearnedAttributor
from relyscope.audits.loo import LeaveOneOut
from relyscope.audits.method import AuditMethod, MethodSettings, NoSettings, Outcome
from relyscope.audits.provenance import AttentionProvenance
from relyscope.audits.registry import validate_config
from relyscope.audits.runner import run_audit, validate_for_audit
from relyscope.audits.tools import ToolOutputAblation
from relyscope.audits.tracing import CausalTracing

__all__ = ["AttentionKnockout", "AttentionProvenance", "AuditMethod", "CausalTracing",
           "ContextAblation", "HeadImportance", "InputXGradient", "IntegratedGradients",
           "LearnedAttributor", "LeaveOneOut", "MethodSettings", "NoSettings", "Outcome",
           "ToolOutputAblation",
           "registry", "run_audit", "validate_config", "validate_for_audit"]
