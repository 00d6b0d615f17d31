"""Audit methods: provenance, leave-one-out, ablation, tool ablation, tracing, metrics.

Public face: `run_audit(case, lm, config) -> Report`.
"""

from relyscope.audits.runner import METHODS, run_audit, validate_for_audit

__all__ = ["METHODS", "run_audit", "validate_for_audit"]
