"""relyscope: which retrieved passages and tool outputs did an LLM answer actually rely on?"""

from relyscope.case import Case, CaseError, Source, ToolCall, Unit, iter_cases, load_case

__all__ = ["Case", "CaseError", "Source", "ToolCall", "Unit", "iter_cases", "load_case"]
__version__ = "0.1.0"
