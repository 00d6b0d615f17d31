"""The data model: what is audited (Case), what an audit can remove (Unit).

A case file is JSON of this shape (extra keys are ignored):

    {"id": "c1", "system": "...", "query": "...",
     "sources": [{"id": "d0", "text": "...", "title": null, "retrieval_score": 0.8,
                  "metadata": {}}],
     "tool_calls": [{"id": "call_1", "name": "get_temperature",
                     "arguments": "{\\"city\\": \\"Orrin\\"}", "output": "18 C", "status": "ok"}],
     "answer": "optional", "metadata": {}}

Validation errors are raised as `CaseError` naming the offending field
(``sources[1].id``), never as a bare pydantic traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relyscope.errors import CaseError, json_error
from relyscope.limits import InputBudget, OverBudget, check_file_size, file_size_message

__all__ = ["Case", "CaseError", "Claims", "Decoding", "Source", "ToolCall", "Unit", "iter_cases",
           "load_case", "save_case", "split_sentences"]

UnitKind = Literal["source", "tool_output", "sentence"]
Granularity = Literal["source", "sentence"]
# Claims of the answer: "auto" (its sentences) or [start, end) character spans of it.
ClaimSpans = tuple[tuple[int, int], ...]
Claims = Literal["auto"] | ClaimSpans


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Source(_Model):
    """A retrieved passage."""

    id: str = Field(min_length=1)
    text: str
    title: str | None = None
    retrieval_score: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ToolCall(_Model):
    """One tool call and what it returned. `arguments` is JSON text; logs may hold invalid JSON."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str = "{}"
    output: str = ""
    status: Literal["ok", "error"] = "ok"
    counterfactual: str | None = None

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_as_json_text(cls, value: Any) -> Any:
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        return value

    def parsed_arguments(self) -> Any:
        """The arguments as JSON; raises CaseError naming the field when they are not JSON."""
        try:
            return json.loads(self.arguments)
        except json.JSONDecodeError as err:
            raise CaseError(f"tool_calls[{self.id}].arguments", json_error(err)) from err


class Decoding(_Model):
    max_new_tokens: int = Field(default=64, ge=1, le=4096)


class Case(_Model):
    """One answer to audit: the query, what was retrieved, which tools ran, and the answer."""

    id: str = Field(min_length=1)
    system: str | None = None
    query: str
    sources: tuple[Source, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    answer: str | None = None
    model: str | None = None
    decoding: Decoding = Field(default_factory=Decoding)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # claims of the answer to attribute one by one (relyscope.audits.claims)
    claims: Claims | None = None

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("answer")
    @classmethod
    def _answer_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty when given (omit it to generate the answer)")
        return value

    @field_validator("claims", mode="before")
    @classmethod
    def _claims_parsed(cls, value: Any) -> Any:
        return parse_claims(value, "claims")

    @model_validator(mode="after")
    def _claims_inside_answer(self) -> Case:
        if isinstance(self.claims, tuple) and self.answer is not None:
            check_claim_spans(self.claims, "claims", len(self.answer))
        return self

    @model_validator(mode="after")
    def _unit_ids_unique(self) -> Case:
        seen: dict[str, str] = {}
        for kind, items in (("sources", self.sources), ("tool_calls", self.tool_calls)):
            for index, item in enumerate(items):
                where = f"{kind}[{index}].id"
                if item.id in seen:
                    raise CaseError(where, f"duplicate unit id {item.id!r} (also {seen[item.id]})")
                seen[item.id] = where
        return self

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, record: str | None = None) -> Case:
        if not isinstance(data, dict):
            raise CaseError("", f"a case must be a JSON object, got {type(data).__name__}",
                            record=record)
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise case_error(err, record=record) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def with_answer(self, answer: str) -> Case:
        return self.model_copy(update={"answer": answer})

    # -- units ----------------------------------------------------------------------------

    def units(self, granularity: Granularity = "source") -> list[Unit]:
        """Everything an audit can remove, in prompt order: sources, then tool outputs."""
        units: list[Unit] = []
        for source in self.sources:
            if granularity == "sentence":
                units.extend(
                    Unit(id=f"{source.id}#{i}", kind="sentence", text=text, parent=source.id,
                         start=start, title=source.title)
                    for i, (text, start) in enumerate(split_sentences(source.text))
                )
            else:
                units.append(Unit(id=source.id, kind="source", text=source.text,
                                  title=source.title))
        units.extend(Unit(id=call.id, kind="tool_output", text=call.output,
                          title=f"{call.name}({call.arguments})")
                     for call in self.tool_calls)
        return units


@dataclass(frozen=True)
class Unit:
    """What an audit can remove: a source, a tool output, or one sentence of a source."""

    id: str
    kind: UnitKind
    text: str
    parent: str | None = None
    start: int = 0              # where `text` starts in its parent source (0: it is the source)
    title: str | None = None    # the source's title; a tool call's name(arguments)

    @property
    def char_span(self) -> tuple[int, int]:
        """[start, end) characters of the unit in its parent source (or in itself)."""
        return self.start, self.start + len(self.text)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")


def split_sentences(text: str) -> list[tuple[str, int]]:
    """Split on sentence-final punctuation followed by a capitalised start.

    Returns (sentence, char offset) pairs covering the text minus inter-sentence whitespace.
    Deliberately simple and dependency-free (NLTK's punkt data cannot be downloaded here).
    """
    pieces: list[tuple[str, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(0).rstrip())
        if text[start:end].strip():
            pieces.append((text[start:end], start))
        start = match.end()
    if text[start:].strip():
        pieces.append((text[start:], start))
    return pieces or [(text, 0)]


def parse_claims(value: Any, field: str) -> Claims | None:
    """Claims from JSON or text: None, "auto", [[start, end], ...] or "START:END,...";
    anything else is a CaseError naming `field` (or `field[i]`)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        value = [part.split(":") for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise CaseError(field, 'must be "auto" or a non-empty list of [start, end] '
                               "character spans of the answer")
    spans: list[tuple[int, int]] = []
    for i, item in enumerate(value):
        try:
            start, end = (int(x) for x in item)
        except (TypeError, ValueError):
            raise CaseError(f"{field}[{i}]", f"{item!r} is not a [start, end] pair of "
                                             "character offsets") from None
        spans.append((start, end))
    check_claim_spans(tuple(spans), field)
    return tuple(spans)


def check_claim_spans(spans: ClaimSpans, field: str, answer_chars: int | None = None) -> None:
    """CaseError naming `field[i]` unless each span is [start, end) with 0 <= start < end (and
    end <= answer_chars when given)."""
    for i, (start, end) in enumerate(spans):
        if not 0 <= start < end:
            raise CaseError(f"{field}[{i}]", f"[{start}, {end}] is not a span: need "
                                             "0 <= start < end (character offsets)")
        if answer_chars is not None and end > answer_chars:
            raise CaseError(f"{field}[{i}]", f"[{start}, {end}] ends past the answer's "
                                             f"{answer_chars} characters")


def case_error(err: ValidationError, *, record: str | None = None) -> CaseError:
    """A pydantic validation failure as a CaseError naming the field of its first error (a
    CaseError raised inside a validator keeps its own field)."""
    first = err.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, CaseError):
        return CaseError(cause.field, cause.message, record=record)
    return CaseError(field_path(first["loc"]), first["msg"].removeprefix("Value error, "),
                     record=record)


def field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


# -- files ------------------------------------------------------------------------------


def load_case(path: str | Path) -> Case:
    """One case from a .json file; a file over the byte budget is refused before reading."""
    path = Path(path)
    check_file_size(path)
    return _case_from_bytes(path.read_bytes(), str(path))


def iter_cases(path: str | Path) -> Iterator[Case]:
    """Cases from a .json file (one case) or a .jsonl file (one case a line).

    A .jsonl file may be any size; each of its lines is held to the byte budget, read no
    further than one byte past it.
    """
    path = Path(path)
    if path.suffix != ".jsonl":
        yield load_case(path)
        return
    budget = InputBudget.from_env()
    with path.open("rb") as handle:
        number = 0
        while line := handle.readline(budget.max_case_bytes + 1):
            number += 1
            record = f"{path}:{number}"
            if len(line) > budget.max_case_bytes:
                raise OverBudget("", file_size_message(budget.max_case_bytes, budget,
                                                       "the line is more than"),
                                 record=record)
            if line.strip():
                yield _case_from_bytes(line, record)


def _case_from_bytes(data: bytes, record: str) -> Case:
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CaseError("", f"not valid UTF-8 ({err})", record=record) from None
    except json.JSONDecodeError as err:
        raise CaseError("", json_error(err), record=record) from None
    except RecursionError:
        raise CaseError("", "not valid JSON (nested too deeply)", record=record) from None
    return Case.from_dict(value, record=record)


def save_case(case: Case, path: str | Path) -> None:
    Path(path).write_text(json.dumps(case.to_dict(), indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")
