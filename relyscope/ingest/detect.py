"""Which reader a log file needs, and `read_logs`, the one entry point over all formats."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from relyscope.case import CaseError
from relyscope.ingest import langsmith, openai, openinference, otel_genai
from relyscope.ingest.jsonio import JsonDoc, dicts, iter_json_docs
from relyscope.ingest.records import FORMATS, FormatName, LogRecord
from relyscope.ingest.spans import flatten_attributes, is_otlp

LOG_SUFFIXES = (".json", ".jsonl", ".ndjson")
PEEK_DOCS = 20

Reader = Callable[..., Iterator[LogRecord]]
READERS: dict[FormatName, Reader] = {
    "openai": openai.records_from_docs,
    "openinference": openinference.records_from_docs,
    "otel_genai": otel_genai.records_from_docs,
    "langsmith": langsmith.records_from_docs,
}


def read_logs(paths: str | Path | Iterable[str | Path], *, fmt: FormatName | None = None,
              parse_arguments: bool = False) -> Iterator[LogRecord]:
    """Every record of the given log files (directories are searched for .json/.jsonl files).

    Each file's format is detected from its first documents unless `fmt` is given. Every record
    comes back as a `LogRecord` holding a Case or a CaseError: an unreadable line, a record
    whose content was not captured, or a file of unknown format never stops the reading.
    With `parse_arguments`, tool-call arguments that are not valid JSON make their record an
    error (by default they are kept as text).
    """
    if fmt is not None and fmt not in READERS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    for path in log_files(paths):
        try:
            docs = iter_json_docs(path)
            head = _peek(docs)
            found = fmt or detect_docs(head)
        except (OSError, UnicodeDecodeError) as err:
            yield _file_error(path, f"cannot read the file ({err})")
            continue
        if found is None:
            yield _file_error(path, "unknown log format: expected OpenAI chat JSONL, "
                                    "OpenInference or OTel GenAI spans, or LangSmith runs")
            continue
        yield from READERS[found](chain(head, docs), parse_arguments=parse_arguments)


def detect_format(path: str | Path) -> FormatName | None:
    """The format of one log file, from its first documents; None when none fits."""
    return detect_docs(_peek(iter_json_docs(path)))


def detect_docs(docs: Iterable[JsonDoc]) -> FormatName | None:
    for doc in docs:
        if doc.error is None:
            found = detect_value(doc.value)
            if found:
                return found
    return None


def detect_value(value: Any) -> FormatName | None:
    """The format one parsed JSON document belongs to, if it tells."""
    if isinstance(value, list):
        return next((f for f in map(detect_value, value[:PEEK_DOCS]) if f), None)
    if not isinstance(value, dict):
        return None
    if is_otlp(value):
        keys = [kv.get("key") for rs in dicts(value.get("resourceSpans")
                                              or value.get("resource_spans"))
                for ss in dicts(rs.get("scopeSpans") or rs.get("scope_spans"))
                for span in dicts(ss.get("spans")) for kv in dicts(span.get("attributes"))]
        return _span_format(keys)
    if "run_type" in value or "child_runs" in value:
        return "langsmith"
    if isinstance(value.get("spans"), list):
        return detect_value(value["spans"])
    if isinstance(value.get("attributes"), dict) or "span_kind" in value:
        if str(value.get("span_kind", "")).upper() in ("LLM", "RETRIEVER", "TOOL", "CHAIN"):
            return "openinference"
        found = _span_format(flatten_attributes(value.get("attributes") or {}))
        if found:
            return found
    request = value.get("request") or value.get("body") or {}
    if "messages" in value or (isinstance(request, dict) and (
            "messages" in request or "messages" in (request.get("body") or {}))):
        return "openai"
    return None


def _span_format(keys: Iterable[Any]) -> FormatName | None:
    gen_ai = False
    for key in keys:
        if not isinstance(key, str):
            continue
        if key == openinference.KIND or key.startswith(("llm.", "retrieval.documents")):
            return "openinference"
        gen_ai = gen_ai or key.startswith("gen_ai.")
    return "otel_genai" if gen_ai else None


def log_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files named, with directories expanded to their .json/.jsonl/.ndjson files (sorted)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in LOG_SUFFIXES))
        else:
            files.append(path)
    return files


def _peek(docs: Iterator[JsonDoc]) -> list[JsonDoc]:
    head: list[JsonDoc] = []
    for doc in docs:
        head.append(doc)
        if len(head) >= PEEK_DOCS or (doc.error is None and detect_value(doc.value)):
            break
    return head


def _file_error(path: Path, message: str) -> LogRecord:
    return LogRecord(str(path), str(path), "unknown", error=CaseError("", message,
                                                                      record=str(path)))
