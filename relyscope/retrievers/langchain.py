"""LangChain adapters both ways, and Document <-> Source conversion.

- `LangChainRetrieverAdapter` wraps any LangChain `BaseRetriever` as a relyscope retriever.
- `RelyscopeLangChainRetriever` exposes a relyscope retriever as a LangChain `BaseRetriever`,
  so relyscope's FAISS index can sit inside LangChain chains and agents.

Source ids are the document's own id (``Document.id`` or an id-like
metadata key) when it has one, else a stable hash of its text, never a position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from relyscope.case import Source
from relyscope.retrievers.base import Retriever

ID_KEYS = ("id", "chunk_id", "doc_id", "document_id")
SCORE_KEYS = ("retrieval_score", "score", "relevance_score", "similarity")


def stable_id(text: str, prefix: str = "doc") -> str:
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def document_to_source(doc: LCDocument) -> Source:
    metadata = dict(doc.metadata or {})
    doc_id = doc.id or next((str(metadata[k]) for k in ID_KEYS if metadata.get(k)), None)
    score = next((metadata[k] for k in SCORE_KEYS if isinstance(metadata.get(k), int | float)),
                 None)
    title = metadata.get("title")
    return Source(id=doc_id or stable_id(doc.page_content), text=doc.page_content,
                  title=str(title) if title else None,
                  retrieval_score=None if score is None else float(score), metadata=metadata)


def documents_to_sources(docs: Iterable[LCDocument]) -> list[Source]:
    """Sources in order; a repeated id gets ``~2``, ``~3``... so unit ids stay unique."""
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for doc in docs:
        source = document_to_source(doc)
        count = seen.get(source.id, 0) + 1
        seen[source.id] = count
        if count > 1:
            source = source.model_copy(update={"id": f"{source.id}~{count}"})
        sources.append(source)
    return sources


def source_to_document(source: Source) -> LCDocument:
    metadata = {**source.metadata, "id": source.id, "retrieval_score": source.retrieval_score}
    if source.title:
        metadata["title"] = source.title
    return LCDocument(id=source.id, page_content=source.text, metadata=metadata)


class LangChainRetrieverAdapter:
    """A LangChain retriever seen as a relyscope retriever (returns at most `top_k`)."""

    def __init__(self, retriever: BaseRetriever) -> None:
        self.retriever = retriever

    def retrieve(self, query: str, top_k: int = 5) -> list[Source]:
        return documents_to_sources(self.retriever.invoke(query))[:top_k]

    def describe(self) -> dict[str, Any]:
        return {"kind": "langchain", "class": type(self.retriever).__name__}


class RelyscopeLangChainRetriever(BaseRetriever):
    """A relyscope retriever seen as a LangChain retriever (fires retriever callbacks)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    top_k: int = 5

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        return [source_to_document(s) for s in self.retriever.retrieve(query, self.top_k)]


def as_langchain_retriever(retriever: Retriever, top_k: int = 5) -> RelyscopeLangChainRetriever:
    return RelyscopeLangChainRetriever(retriever=retriever, top_k=top_k)
