"""Errors that cross layers (bad input, budgets -> service status codes), kept import-light."""

from __future__ import annotations

import json


class CaseError(ValueError):
    """A case (or a field of it) is invalid. `field` names where, e.g. ``sources[2].id``."""

    def __init__(self, field: str, message: str, *, record: str | None = None) -> None:
        self.field = field
        self.message = message
        self.record = record
        where = f"{record}: " if record else ""
        super().__init__(f"{where}{field}: {message}" if field else f"{where}{message}")


class BudgetTooSmall(ValueError):
    """Not even the full answer could be scored within the budget; `timed_out` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"budget too small for even the full answer score ({reason})")
        self.reason = reason
        self.timed_out = reason.startswith("time")


class ContextOverflow(ValueError):
    """A rendered case is longer than the model's context window."""


def json_error(err: json.JSONDecodeError, *, what: str = "not valid JSON") -> str:
    """A JSON syntax error as one clean phrase: ``not valid JSON: expecting ',' delimiter at
    column 8`` (the line too when the text has several)."""
    message = f"{err.msg[:1].lower()}{err.msg[1:]}"
    if not err.doc.strip():
        return f"{what}: the text is empty"
    if err.pos >= len(err.doc.rstrip()):
        return f"{what}: it ends early ({message} at the end)"
    where = f"line {err.lineno}, column {err.colno}" if "\n" in err.doc.rstrip() else \
        f"column {err.colno}"
    return f"{what}: {message} at {where}"
