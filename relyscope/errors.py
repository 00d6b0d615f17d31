"""Errors that cross layers (bad input, budgets -> service status codes), kept import-light."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


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


class ScoringStopped(Exception):
    """A stop check said stop between two model calls (a deadline that the next call would
    overrun, or a cancellation). `done` maps the index of each item already scored to its
    score, so the caller keeps what was computed."""

    def __init__(self, reason: str, done: dict[int, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.done: dict[int, Any] = done or {}


class AuditCancelled(Exception):
    """The audit's cancel check fired (its caller went away): no report is produced."""


# Called before each model call with the seconds that call is expected to take; returns why
# it must not start (a deadline it would overrun, a cancellation), or None to go ahead.
Stop = Callable[[float], "str | None"]


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
