"""Retrieval: FAISS + sentence-transformers retriever, index build, LangChain adapters."""

from relyscope.retrievers.base import (
    EmbedderMismatchError,
    EmptyCorpusError,
    IndexNotFoundError,
    Retriever,
)
from relyscope.retrievers.documents import Chunk, Document, chunk_documents, load_documents
from relyscope.retrievers.embedder import DEFAULT_EMBEDDER, Embedder, default_embedder
from relyscope.retrievers.faiss_index import FaissRetriever, IndexSettings

__all__ = ["DEFAULT_EMBEDDER", "Chunk", "Document", "EmbedderMismatchError", "Embedder",
           "EmptyCorpusError", "FaissRetriever", "IndexNotFoundError", "IndexSettings",
           "Retriever", "chunk_documents", "default_embedder", "load_documents"]
