"""What a retriever is to relyscope, and the errors retrieval raises.

A retriever is anything with ``retrieve(query, top_k) -> list[Source]``; FAISS, LangChain and
caller-written retrievers all fit. Errors subclass FileNotFoundError / ValueError so the CLI
reports them as the caller's mistake (exit 2) without a traceback.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from relyscope.case import Source


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, query: str, top_k: int = 5) -> list[Source]:
        """The `top_k` best passages for `query`, best first, with `retrieval_score` set."""
        ...


class IndexNotFoundError(FileNotFoundError):
    """The index directory (or a file in it) is missing."""


class EmptyCorpusError(ValueError):
    """The corpus has no documents, or no document has any text."""


class EmbedderMismatchError(ValueError):
    """The index was built with a different embedding model than the one given."""
