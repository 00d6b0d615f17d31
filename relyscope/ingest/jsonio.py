"""Reading JSON / JSONL log files record by record, and small JSON value helpers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relyscope.errors import json_error

JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class JsonDoc:
    """One parsed JSON document of a log file, or the reason it could not be parsed."""

    path: Path
    line: int
    value: Any = None
    error: str | None = None

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


def iter_json_docs(path: str | Path) -> Iterator[JsonDoc]:
    """The JSON documents of `path`: the whole file when it is one document, else one per line.

    `.jsonl` / `.ndjson` files are always read line by line (never loaded whole). A line that is
    not JSON yields a `JsonDoc` with `error` set and reading goes on with the next line.
    """
    path = Path(path)
    if path.suffix not in JSONL_SUFFIXES:
        text = path.read_text(encoding="utf-8")
        try:
            yield JsonDoc(path, 1, json.loads(text))
            return
        except json.JSONDecodeError as err:
            if not _looks_like_jsonl(text):
                yield JsonDoc(path, err.lineno, error=json_error(err))
                return
        yield from _lines(path, text.splitlines())
        return
    with path.open(encoding="utf-8") as handle:
        yield from _lines(path, handle)


def iter_docs(paths: Iterable[str | Path]) -> Iterator[JsonDoc]:
    for path in paths:
        yield from iter_json_docs(path)


def _lines(path: Path, lines: Any) -> Iterator[JsonDoc]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield JsonDoc(path, number, json.loads(line))
        except json.JSONDecodeError as err:
            yield JsonDoc(path, number, error=json_error(err))


def _looks_like_jsonl(text: str) -> bool:
    """True when the first non-empty line is a JSON document by itself."""
    for line in text.splitlines():
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                return False
            return True
    return False


def maybe_json(value: Any) -> Any:
    """Parse `value` when it is a string holding a JSON object or array; else return it as is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def as_text(value: Any) -> str | None:
    """Message content as plain text: strings as is, lists of parts joined, None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [t for t in (_part_text(part) for part in value) if t is not None]
        return "".join(texts) if texts else None
    if isinstance(value, dict):
        return _part_text(value)
    return json.dumps(value, ensure_ascii=False)


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        if part.get("type", "text") not in ("text", "input_text", "output_text"):
            return None
        for key in ("text", "content"):
            if isinstance(part.get(key), str):
                return part[key]
    return None


def as_json_text(value: Any) -> str:
    """Tool arguments or outputs as text: strings unchanged, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def first(mapping: dict[str, Any], *keys: str) -> Any:
    """The value of the first key present with a non-None value."""
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (anything else in a log's place of a list gives none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


#: What reading a log value of an unexpected shape raises (a record of it becomes an error).
SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)
