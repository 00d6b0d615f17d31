"""The results file of `audit-logs`: one JSON line per log record, appended durably.

A line is ``{"record_id", "location", "format", "status": "ok", "report": {...}, "ingest":
{...}}`` or ``{..., "status": "error", "error": {"field", "message", "reason"}}``. Each line goes
out in one ``os.write`` on an ``O_APPEND`` descriptor followed by ``fsync``, so a killed run
leaves at most one torn final line; `ResultsFile.open` cuts such a tail away (a last line with
no newline, or one that is not JSON) before anything is appended, and holds an exclusive lock
so two runs never append to the same file. The record ids already present are what a resumed
run skips. `relyscope audit CASES.jsonl --out reports.jsonl` appends its report lines through
the same class, keyed by ``case_id`` (``ResultsFile.open(path, key="case_id")``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relyscope.case import Case, CaseError


def error_reason(err: Exception, *, stage: str = "read") -> str:
    """A short category for an error line, for counting errors by reason. At the audit stage a
    ValueError (CaseError included) says the case cannot be audited (no units, too long)."""
    if stage == "audit":
        return "not-auditable" if isinstance(err, ValueError) else "audit-failed"
    if not isinstance(err, CaseError):
        return "invalid-record"
    message = err.message
    if err.field.endswith(".arguments"):
        return "invalid-tool-arguments"
    if message.startswith("not valid JSON"):
        return "bad-json"
    if message.startswith(("unknown log format", "cannot read the file")):
        return "unreadable-file"
    if "not captured" in message or message.startswith("missing"):
        return "missing-content"
    return "invalid-record"


def ok_line(record_id: str, location: str, fmt: str, report: dict[str, Any], case: Case
            ) -> dict[str, Any]:
    """The result line of an audited record; `ingest` keeps what summaries and annotations need
    (span ids, tool names) so neither has to re-read the logs."""
    ingest = case.metadata.get("ingest") or {}
    extra = {"answer_span": ingest.get("answer_span"), "unit_spans": ingest.get("unit_spans") or {},
             "trace_id": case.metadata.get("trace_id"),
             "tools": {call.id: call.name for call in case.tool_calls}}
    return {"record_id": record_id, "location": location, "format": fmt, "status": "ok",
            "report": report, "ingest": extra}


def error_detail(err: Exception, *, stage: str = "read") -> dict[str, str]:
    """The ``error`` object of an error line (plain data: it crosses process boundaries)."""
    if isinstance(err, CaseError):
        field_name, message = err.field, err.message
    else:
        field_name, message = "", f"{type(err).__name__}: {err}"
    return {"field": field_name, "message": message, "reason": error_reason(err, stage=stage)}


def error_line(record_id: str, location: str, fmt: str, detail: dict[str, str]
               ) -> dict[str, Any]:
    return {"record_id": record_id, "location": location, "format": fmt, "status": "error",
            "error": detail}


@dataclass
class ResultsFile:
    """An open results file: the ids already done, and a durable, locked appender."""

    path: Path
    done: dict[str, str] = field(default_factory=dict)  # record id -> status
    repaired_tail: bytes = b""
    key: str = "record_id"  # the field that identifies a line
    _fd: int = -1

    @classmethod
    def open(cls, path: str | Path, *, key: str = "record_id") -> ResultsFile:
        """`key`: the field that identifies a line (`record_id`; `case_id` for reports)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            command = "audit-logs" if key == "record_id" else "relyscope audit"
            raise ValueError(f"{path} is being written by another {command} run") from None
        results = cls(path, key=key, _fd=fd)
        try:
            results._load()
        except BaseException:
            results.close()
            raise
        return results

    def _load(self) -> None:
        good_end = 0
        with self.path.open("rb") as handle:
            lines = _numbered(handle)
            item = next(lines, None)
            while item is not None:
                number, start, raw = item
                item = next(lines, None)
                value = _parse(raw, self.key)
                if value is None or not raw.endswith(b"\n"):
                    if item is None:  # a torn tail from a killed run: cut it away
                        self.repaired_tail = raw
                        break
                    raise ValueError(f"{self.path}:{number}: not a result line (not JSON with "
                                     f"a {self.key}); the file was not written by relyscope")
                self.done.setdefault(str(value[self.key]), str(value.get("status", "ok")))
                good_end = start + len(raw)
        if self.repaired_tail:
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)

    def append(self, line: dict[str, Any]) -> None:
        """Write one complete line (one write, then fsync); never a second line for an id."""
        record_id = str(line[self.key])
        if record_id in self.done:
            raise ValueError(f"{self.key} {record_id!r} already has a result in {self.path}")
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.done[record_id] = str(line.get("status", "ok"))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: str | Path) -> Iterator[dict[str, Any]]:
    """The complete result lines of a results file (a torn final line is left out)."""
    with Path(path).open("rb") as handle:
        for _number, _start, raw in _numbered(handle):
            value = _parse(raw)
            if value is not None and raw.endswith(b"\n"):
                yield value


def _numbered(handle: Any) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) for each non-blank line."""
    offset = 0
    for number, raw in enumerate(handle, 1):
        if raw.strip():
            yield number, offset, raw
        offset += len(raw)


def _parse(raw: bytes, key: str = "record_id") -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and key in value else None
