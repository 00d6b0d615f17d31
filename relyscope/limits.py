"""One input budget for the CLI, the library and the service, checked cheapest first.

Bytes are checked before a case file is read, characters before anything is tokenised, and
tokens before any model call (generating a missing answer included). Every refusal is an
`OverBudget` (a CaseError) with the same message wherever it happens: the CLI exits 2 with
it, the service answers RESOURCE_EXHAUSTED with it.

The character limit is the smaller of a fixed cap and the model's context times a generous
bound on characters per token, so a case it refuses could not have fitted the context anyway.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from relyscope.errors import CaseError

MAX_CHARS_ENV = "RELYSCOPE_MAX_CHARS"
MAX_CASE_BYTES_ENV = "RELYSCOPE_MAX_CASE_BYTES"


class _Source(Protocol):
    text: str
    title: str | None


class _ToolCall(Protocol):
    name: str
    arguments: str
    output: str
    counterfactual: str | None


class Case(Protocol):
    """What the budget reads of a relyscope.case.Case (which imports this module)."""

    id: str
    system: str | None
    query: str
    answer: str | None
    sources: Sequence[_Source]
    tool_calls: Sequence[_ToolCall]


class OverBudget(CaseError):
    """Input over the budget (too many bytes, characters or tokens), not malformed input."""


@dataclass(frozen=True)
class InputBudget:
    max_chars: int = 1_000_000  # all text of a case, whatever the model
    max_case_bytes: int = 32 * 2**20  # one .json case file, or one line of a .jsonl file
    chars_per_token: int = 32  # more than any real tokenizer packs into one token

    @classmethod
    def from_env(cls) -> InputBudget:
        """The defaults, overridden by $RELYSCOPE_MAX_CHARS and $RELYSCOPE_MAX_CASE_BYTES."""
        default = cls()
        return cls(max_chars=_env_int(MAX_CHARS_ENV, default.max_chars),
                   max_case_bytes=_env_int(MAX_CASE_BYTES_ENV, default.max_case_bytes))

    def char_limit(self, context_tokens: int | None) -> tuple[int, str]:
        """The character limit for a model with this context, and where it comes from."""
        if context_tokens and context_tokens * self.chars_per_token < self.max_chars:
            return (context_tokens * self.chars_per_token,
                    f"the model's context of {context_tokens} tokens x "
                    f"{self.chars_per_token} characters a token")
        return self.max_chars, f"the input budget (${MAX_CHARS_ENV})"


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise CaseError(name, f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise CaseError(name, "must be at least 1")
    return value


def text_fields(case: Case) -> dict[str, int]:
    """Characters per text field that goes into the prompt, by field name."""
    sizes = {"system": len(case.system or ""), "query": len(case.query),
             "answer": len(case.answer or "")}
    for i, source in enumerate(case.sources):
        sizes[f"sources[{i}].text"] = len(source.text)
        sizes[f"sources[{i}].title"] = len(source.title or "")
    for i, call in enumerate(case.tool_calls):
        sizes[f"tool_calls[{i}].name"] = len(call.name)
        sizes[f"tool_calls[{i}].arguments"] = len(call.arguments)
        sizes[f"tool_calls[{i}].output"] = len(call.output)
        sizes[f"tool_calls[{i}].counterfactual"] = len(call.counterfactual or "")
    return sizes


def _largest(case: Case) -> str:
    sizes = text_fields(case)
    name = max(sizes, key=lambda key: sizes[key])
    return f"largest field: {name}, {sizes[name]} characters"


def check_file_size(path: str | Path, budget: InputBudget | None = None) -> None:
    """Refuse a case file over the byte budget before reading any of it."""
    budget = budget or InputBudget.from_env()
    size = Path(path).stat().st_size
    if size > budget.max_case_bytes:
        raise OverBudget("", file_size_message(size, budget), record=str(path))


def file_size_message(size: int, budget: InputBudget, what: str = "the case is") -> str:
    return (f"{what} {size} bytes, over the input budget of {budget.max_case_bytes} bytes "
            f"(${MAX_CASE_BYTES_ENV})")


def check_chars(case: Case, context_tokens: int | None = None,
                budget: InputBudget | None = None) -> None:
    """Refuse a case whose text is over the character limit (cheap: nothing is tokenised)."""
    budget = budget or InputBudget.from_env()
    total = sum(text_fields(case).values())
    limit, why = budget.char_limit(context_tokens)
    if total > limit:
        raise OverBudget("", f"case {case.id!r} is {total} characters, over {why} = {limit} "
                             f"characters ({_largest(case)})")


def check_tokens(case: Case, tokens: int, limit: int | None,
                 limit_name: str = "the model's context", field: str = "") -> None:
    """Refuse a case of `tokens` tokens (prompt + answer, or + the generation budget)."""
    if limit is not None and tokens > limit:
        raise OverBudget(field, f"case {case.id!r} is {tokens} tokens (prompt + answer), over "
                                f"{limit_name} of {limit} tokens ({_largest(case)})")
