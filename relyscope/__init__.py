"""relyscope: which retrieved passages and tool outputs did an LLM answer actually rely on?

The library in one import::

    import relyscope

    lm = relyscope.CausalLM.load()
    report = relyscope.run_audit(relyscope.load_case("case.json"), lm,
                                 relyscope.AuditConfig(methods=("attention", "loo")))

The data model loads eagerly (pydantic only); `run_audit` and `CausalLM` load the model stack
(torch, transformers) on first use, so `import relyscope` stays cheap for the light client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from relyscope.case import Case, Source, ToolCall, Unit, iter_cases, load_case
from relyscope.config import AuditConfig
from relyscope.errors import CaseError
from relyscope.report_model import Report

if TYPE_CHECKING:
    from relyscope.audits import run_audit
    from relyscope.models import CausalLM

__all__ = ["AuditConfig", "Case", "CaseError", "CausalLM", "Report", "Source", "ToolCall",
           "Unit", "iter_cases", "load_case", "run_audit"]
__version__ = "0.1.0"

_LAZY = {"run_audit": "relyscope.audits", "CausalLM": "relyscope.models"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'relyscope' has no attribute {name!r}")
