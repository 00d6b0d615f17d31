"""Documents in, chunks out: reading a corpus and splitting it at its structure.

Chunks are cut at paragraphs, lines, sentences and words (in that order of preference) and
sized in the embedder's tokens. Chunk ids are ``{doc_id}#c{position}``: stable across rebuilds
as long as the document, the chunking settings and the tokenizer are, so audit reports keyed
by chunk id stay comparable. A chunk's text is always ``document.text[start:end]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
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

#: Regular expressions, coarsest first: paragraphs (a blank line), sentences, lines, words. A
#: piece that fits is kept whole; only one that does not is cut at the next finer level.
#: Sentences come before lines because most prose is hard-wrapped: a line end is rarely a
#: sentence end. No "" fallback, so a boundary never falls inside a word (a longer word stays
#: whole, over the size).
SEPARATORS = (r"\n[^\S\n]*\n\s*", r"(?<=[.?!])\s+", r"\n\s*", r"\s+")
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30

TokenCounter = Callable[[str], int]


def token_counter(tokenizer: Any) -> TokenCounter:
    """Counts a text's tokens under `tokenizer` (a Hugging Face tokenizer), special tokens
    excluded: the embedder adds two ([CLS], [SEP]) to every chunk on top."""

    backend = getattr(tokenizer, "backend_tokenizer", None)  # no "sequence too long" warning
    if backend is not None:  # a copy without the embedder's truncation and padding
        backend = type(backend).from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()

    @lru_cache(maxsize=4096)  # the splitter measures each piece again while merging
    def count(text: str) -> int:
        if backend is not None:
            return len(backend.encode(text, add_special_tokens=False).ids)
        return len(tokenizer.tokenize(text))

    return count


def chunk_spans(text: str, chunk_size: int, overlap: int,
                count_tokens: TokenCounter) -> list[tuple[int, int]]:
    """Char spans of chunks of at most `chunk_size` tokens, cut at structure.

    LangChain's RecursiveCharacterTextSplitter splits at paragraphs, then sentences, then
    lines, then words, and merges neighbouring pieces up to `chunk_size` tokens, repeating
    up to `overlap` tokens of trailing pieces at the start of the next chunk. Each chunk is a
    stripped run of consecutive pieces, and the chunks cover every non-space char; so a chunk
    starts after the previous chunk's start and at or before the first non-space char after
    its end. Its offsets are its last occurrence in that window (an earlier one can be a
    repeat: reference grammars repeat whole lines).
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"overlap must be in [0, chunk_size), got {overlap}")
    splitter = RecursiveCharacterTextSplitter(
        separators=list(SEPARATORS), is_separator_regex=True, keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=overlap, length_function=count_tokens, strip_whitespace=True)
    spans: list[tuple[int, int]] = []
    low, end = 0, 0
    for piece in splitter.split_text(text):
        piece = piece.strip()  # a piece too long to cut further comes back unstripped
        if not piece:
            continue
        high = len(text) - len(text[end:].lstrip())  # first non-space char after the last chunk
        start = text.rfind(piece, low, high + len(piece))
        if start < 0:  # the splitter only ever cuts and strips; this would be a bug there
            raise RuntimeError(f"chunk not found in its document between {low} and {high}")
        end = start + len(piece)
        spans.append((start, end))
        low = start + 1
    return spans


def chunk_documents(docs: Iterable[Document], chunk_size: int = DEFAULT_CHUNK_TOKENS,
                    overlap: int = DEFAULT_OVERLAP_TOKENS,
                    count_tokens: TokenCounter | None = None) -> list[Chunk]:
    """Chunks of at most `chunk_size` tokens (`overlap` tokens shared between neighbours).

    Tokens are counted by `count_tokens`, by default the packaged embedder's tokenizer, so a
    chunk fits the embedder's window and nothing is truncated away when it is embedded.
    """
    if count_tokens is None:
        from relyscope.retrievers.embedder import default_embedder

        count_tokens = token_counter(default_embedder().model.tokenizer)
    chunks: list[Chunk] = []
    for doc in docs:
        spans = chunk_spans(doc.text, chunk_size, overlap, count_tokens)
        for position, (start, end) in enumerate(spans):
            chunks.append(Chunk(id=f"{doc.id}#c{position}", doc_id=doc.id, position=position,
                                text=doc.text[start:end], start=start, end=end, title=doc.title,
                                metadata=dict(doc.metadata)))
    return chunks
