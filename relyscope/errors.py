"""Errors that cross layers (runner -> service status codes), kept import-light.

`CaseError` (bad input, with the field named) lives beside the data model in case.py.
"""

from __future__ import annotations


class BudgetTooSmall(ValueError):
    """Not even the full answer could be scored within the budget; `timed_out` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"budget too small for even the full answer score ({reason})")
        self.reason = reason
        self.timed_out = reason.startswith("time")


class ContextOverflow(ValueError):
    """A rendered case is longer than the model's context window."""
