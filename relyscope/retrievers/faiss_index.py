"""A FAISS index over chunk embeddings: build, save, load, retrieve.

An index directory holds ``index.faiss``, ``chunks.jsonl`` (row i of the index is line i) and
``manifest.json`` (embedder id, fingerprint and dims, index type and parameters, chunking
settings, counts). Embeddings are normalised, so inner product is cosine similarity.
``flat`` is exact; ``ivf`` (inverted lists, `nprobe` lists searched) is for large corpora.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from relyscope.case import Source
from relyscope.retrievers.base import EmbedderMismatchError, EmptyCorpusError, IndexNotFoundError
from relyscope.retrievers.documents import (
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_OVERLAP_TOKENS,
    SEPARATORS,
    Chunk,
    Document,
    chunk_documents,
    load_documents,
    token_counter,
)
from relyscope.retrievers.embedder import DEFAULT_EMBEDDER, Embedder, default_embedder

IndexType = Literal["flat", "ivf"]
FORMAT_VERSION = 1
INDEX_FILE, CHUNKS_FILE, MANIFEST_FILE = "index.faiss", "chunks.jsonl", "manifest.json"


@dataclass(frozen=True)
class IndexSettings:
    chunk_size: int = DEFAULT_CHUNK_TOKENS  # embedder tokens, at most its window less 2
    overlap: int = DEFAULT_OVERLAP_TOKENS  # embedder tokens
    index: IndexType = "flat"
    nlist: int | None = None  # ivf: number of inverted lists (default about 4 * sqrt(n))
    nprobe: int | None = None  # ivf: lists searched per query (default nlist / 8, at least 1)
    batch_size: int = 64


class FaissRetriever:
    """Retrieves chunks by cosine similarity; ``retrieve`` returns `Source`s with scores."""

    def __init__(self, index: faiss.Index, chunks: Sequence[Chunk], embedder: Embedder,
                 manifest: dict[str, Any]) -> None:
        if index.ntotal != len(chunks):
            raise ValueError(f"index has {index.ntotal} vectors but there are {len(chunks)} "
                             "chunks")
        self.index = index
        self.chunks = list(chunks)
        self.embedder = embedder
        self.manifest = manifest

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls, documents: Sequence[Document] | str | Path, *,
              embedder: Embedder | None = None, settings: IndexSettings | None = None,
              progress: bool = True) -> FaissRetriever:
        """Chunk, embed (with a tqdm progress bar) and index `documents` (or a corpus path)."""
        settings = settings or IndexSettings()
        if settings.index not in ("flat", "ivf"):
            raise ValueError(f"index must be 'flat' or 'ivf', got {settings.index!r}")
        docs = load_documents(documents) if isinstance(documents, str | Path) else documents
        embedder = embedder or default_embedder()
        window = chunk_window(embedder)
        if window is not None and settings.chunk_size > window:
            raise ValueError(f"chunk_size: {settings.chunk_size} tokens do not fit the "
                             f"embedder's window of {window} tokens (plus 2 special tokens)")
        chunks = chunk_documents(docs, settings.chunk_size, settings.overlap,
                                 token_counter(embedder.model.tokenizer))
        if not chunks:
            raise EmptyCorpusError("corpus is empty: no document has any text to index")
        started = time.perf_counter()
        # one call: sentence-transformers sorts by length (less padding) and shows the bar
        vectors = embedder.encode([c.text for c in chunks], batch_size=settings.batch_size,
                                  progress=progress)
        index, params = _make_index(settings, vectors)
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder": embedder.describe(),
            "index": {"type": settings.index, "metric": "inner_product", **params,
                      "ntotal": int(index.ntotal)},
            "chunking": {"chunk_size": settings.chunk_size, "overlap": settings.overlap,
                         "unit": "embedder tokens",
                         "splitter": "langchain RecursiveCharacterTextSplitter",
                         "separators": list(SEPARATORS), "id": "{doc_id}#c{position}"},
            "documents": len({c.doc_id for c in chunks}),
            "chunks": len(chunks),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        return cls(index, chunks, embedder, manifest)

    # -- files ----------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(directory / INDEX_FILE))
        with (directory / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
            for chunk in self.chunks:
                handle.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        (directory / MANIFEST_FILE).write_text(json.dumps(self.manifest, indent=2) + "\n",
                                               encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, embedder: Embedder | None = None) -> FaissRetriever:
        """Load an index directory. Without `embedder`, the one named in the manifest loads.

        Raises IndexNotFoundError naming the path, EmbedderMismatchError when `embedder` is not
        the model the index was built with.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise IndexNotFoundError(f"index directory not found: {directory} "
                                     "(build one with `relyscope index DOCS --out DIR`)")
        for name in (INDEX_FILE, CHUNKS_FILE, MANIFEST_FILE):
            if not (directory / name).is_file():
                raise IndexNotFoundError(f"{directory / name} is missing: {directory} is not a "
                                         "complete relyscope index")
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        expected = manifest["embedder"]
        if embedder is None:
            embedder = (default_embedder() if expected["id"] == DEFAULT_EMBEDDER
                        else Embedder.load(expected["id"]))
        check_embedder(embedder, expected, directory)
        index = faiss.read_index(str(directory / INDEX_FILE))
        if "nprobe" in manifest["index"]:
            faiss.extract_index_ivf(index).nprobe = int(manifest["index"]["nprobe"])
        with (directory / CHUNKS_FILE).open(encoding="utf-8") as handle:
            chunks = [Chunk.from_dict(json.loads(line)) for line in handle if line.strip()]
        return cls(index, chunks, embedder, manifest)

    # -- retrieval ------------------------------------------------------------------------------

    def retrieve(self, query: str, top_k: int = 5) -> list[Source]:
        return self.retrieve_many([query], top_k)[0]

    def retrieve_many(self, queries: Sequence[str], top_k: int = 5) -> list[list[Source]]:
        """Batched retrieval: one embedding call and one FAISS search for all queries."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if not queries:
            return []
        vectors = self.embedder.encode(queries)
        scores, rows = self.index.search(vectors, min(top_k, len(self.chunks)))
        return [[self.chunks[r].to_source(float(s)) for s, r in zip(srow, rrow, strict=True)
                 if r >= 0] for srow, rrow in zip(scores, rows, strict=True)]

    def describe(self) -> dict[str, Any]:
        return {"kind": "faiss", **{k: self.manifest[k] for k in
                                    ("embedder", "index", "chunking", "documents", "chunks")}}


def chunk_window(embedder: Embedder) -> int | None:
    """The most tokens a chunk may have so the embedder reads all of it (None: unknown)."""
    limit = getattr(embedder.model, "max_seq_length", None)
    return None if not limit else int(limit) - 2


def check_embedder(embedder: Embedder, expected: dict[str, Any], where: Path | str) -> None:
    if embedder.dims != expected["dims"] or embedder.fingerprint != expected["fingerprint"]:
        raise EmbedderMismatchError(
            f"index {where} was built with embedder {expected['id']!r} (dims {expected['dims']}, "
            f"fingerprint {expected['fingerprint']}), not {embedder.id!r} (dims {embedder.dims}, "
            f"fingerprint {embedder.fingerprint}); rebuild the index or load it with its embedder")


def _make_index(settings: IndexSettings, vectors: np.ndarray) -> tuple[faiss.Index, dict]:
    n, dims = vectors.shape
    if settings.index == "flat":
        index = faiss.IndexFlatIP(dims)
        index.add(vectors)
        return index, {}
    nlist = settings.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
    if nlist > n:
        raise ValueError(f"ivf needs at least nlist={nlist} chunks to train, got {n}")
    nprobe = min(nlist, settings.nprobe or max(1, nlist // 8))
    index = faiss.index_factory(dims, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index, {"nlist": nlist, "nprobe": nprobe}
