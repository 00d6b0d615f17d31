"""Sentence-transformers embeddings, normalised so inner product is cosine similarity.

The default is the packaged all-MiniLM-L6-v2, loaded offline. Each
embedder carries a fingerprint of its weights so an index refuses a different model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class Embedder:
    """A SentenceTransformer with an id, a dimension and a weights fingerprint."""

    def __init__(self, model, *, model_id: str, fingerprint: str) -> None:
        self.model = model
        self.id = model_id
        self.fingerprint = fingerprint
        dims = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension  # sentence-transformers < 6
        self.dims = int(dims())

    @classmethod
    def load(cls, name_or_path: str | None = None, *, device: str = "cpu") -> Embedder:
        """The packaged default (no argument) or a local sentence-transformers folder."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if name_or_path in (None, "", DEFAULT_EMBEDDER):
            from relyscope.models.packaged import embedding_model_dir

            folder, model_id = embedding_model_dir(), DEFAULT_EMBEDDER
        else:
            folder = Path(name_or_path).expanduser().resolve()
            model_id = str(folder)  # absolute, so an index can reload it from any cwd
            if not folder.is_dir():
                raise FileNotFoundError(f"embedding model folder not found: {folder}")
        model = SentenceTransformer(str(folder), device=device)
        return cls(model, model_id=model_id, fingerprint=folder_fingerprint(folder))

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        """float32 array (len(texts), dims), each row of unit length."""
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=progress)
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dims)

    def describe(self) -> dict[str, object]:
        return {"id": self.id, "fingerprint": self.fingerprint, "dims": self.dims,
                "normalized": True}


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The packaged embedder, loaded once per process."""
    return Embedder.load()


def folder_fingerprint(folder: Path) -> str:
    """Config plus weight file names and sizes: cheap, and changes when the weights do."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(json.dumps(json.loads(config.read_text()), sort_keys=True).encode())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]
