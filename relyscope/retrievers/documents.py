"""Documents in, chunks out: reading a corpus and splitting it with overlap.

Chunk ids are ``{doc_id}#c{position}``: stable across rebuilds as long as the document and the
chunking settings are, so audit reports keyed by chunk id stay comparable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relyscope.case import Source
from relyscope.retrievers.base import EmptyCorpusError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of one document; `start`/`end` are char offsets into the document's text."""

    id: str
    doc_id: str
    position: int
    text: str
    start: int
    end: int
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_source(self, score: float | None = None) -> Source:
        metadata = {**self.metadata, "doc_id": self.doc_id, "chunk": self.position,
                    "char_start": self.start, "char_end": self.end}
        return Source(id=self.id, text=self.text, title=self.title, retrieval_score=score,
                      metadata=metadata)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "doc_id": self.doc_id, "position": self.position,
                "text": self.text, "start": self.start, "end": self.end, "title": self.title,
                "metadata": self.metadata}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**{k: data[k] for k in ("id", "doc_id", "position", "text", "start", "end")},
                   title=data.get("title"), metadata=data.get("metadata") or {})


# -- reading a corpus ------------------------------------------------------------------------


def load_documents(path: str | Path) -> list[Document]:
    """Documents from a folder of .txt/.md files (id = relative path) or a DOCS.jsonl file.

    Raises FileNotFoundError for a missing path and EmptyCorpusError when nothing has text.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    docs = list(_read_folder(path) if path.is_dir() else _read_jsonl(path))
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise EmptyCorpusError(f"corpus {path} has no documents with text "
                               f"(a folder needs {'/'.join(TEXT_SUFFIXES)} files; a .jsonl file "
                               "needs lines with a non-empty \"text\")")
    return docs


def _read_folder(folder: Path) -> Iterator[Document]:
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.suffix.lower() in TEXT_SUFFIXES:
            doc_id = file.relative_to(folder).as_posix()
            yield Document(id=doc_id, text=file.read_text(encoding="utf-8"), title=file.stem,
                           metadata={"path": doc_id})


def _read_jsonl(file: Path) -> Iterator[Document]:
    seen: set[str] = set()
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err})") from None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                raise ValueError(f"{where}: text: each line needs a string \"text\"")
            doc_id = str(data.get("id") or f"doc{number}")
            if doc_id in seen:
                raise ValueError(f"{where}: id: duplicate document id {doc_id!r}")
            seen.add(doc_id)
            metadata = data.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise ValueError(f"{where}: metadata: must be an object")
            yield Document(id=doc_id, text=data["text"], title=data.get("title"),
                           metadata=metadata)


# -- chunking ------------------------------------------------------------------------------------

_WORD = re.compile(r"\S+")


def chunk_spans(text: str, chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    """Char spans of at most `chunk_size` chars cut at whitespace, each overlapping the last.

    A chunk starts at the first word that begins at or after `overlap` chars before the previous
    chunk's end (and always after the previous chunk's start, so the loop advances). A single
    word longer than `chunk_size` becomes a chunk of its own.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"overlap must be in [0, chunk_size), got {overlap}")
    words = [m.span() for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(words):
        start = words[first][0]
        last = first
        while last + 1 < len(words) and words[last + 1][1] - start <= chunk_size:
            last += 1
        end = words[last][1]
        spans.append((start, end))
        if last == len(words) - 1:
            break
        nxt = last + 1
        while nxt - 1 > first and words[nxt - 1][0] >= end - overlap:
            nxt -= 1
        first = nxt
    return spans


def chunk_documents(docs: Iterable[Document], chunk_size: int = 800,
                    overlap: int = 120) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in docs:
        for position, (start, end) in enumerate(chunk_spans(doc.text, chunk_size, overlap)):
            chunks.append(Chunk(id=f"{doc.id}#c{position}", doc_id=doc.id, position=position,
                                text=doc.text[start:end], start=start, end=end, title=doc.title,
                                metadata=dict(doc.metadata)))
    return chunks
