"""The CI gate: compare two runs over one evaluation set (compare), produce the runs (runs),
and write the verdict as JUnit XML, Markdown and JSON (writers)."""

from relyscope.gate.compare import GateResult, GateSettings, MetricResult, compare, paired_bootstrap

__all__ = ["GateResult", "GateSettings", "MetricResult", "compare", "paired_bootstrap"]
