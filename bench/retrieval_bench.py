"""Retrieval benchmark: index build time and size, query latency (p50), for two corpora.

- the bundled demo corpus (36 short documents);
- a synthetic corpus of 10,000 one-chunk documents (seeded), indexed flat and IVF.

Build time includes chunking and embedding (the bulk of it); for IVF the embeddings of the
flat build are reused, so its build time is the flat build's embedding time plus its own
training and adding. Query latency is one `retrieve()` call (embedding the query + search);
search-only latency is FAISS alone. Run: ``python bench/retrieval_bench.py``; writes
bench/results/retrieval.json.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import faiss
import numpy as np
import torch

from relyscope.retrievers import Document, FaissRetriever, IndexSettings, default_embedder
from relyscope.retrievers.faiss_index import _make_index

RESULTS = Path(__file__).parent / "results" / "retrieval.json"
DEMO = Path(str(resources.files("relyscope") / "data" / "demo_corpus.jsonl"))
DEMO_QUERIES = [
    "Who designed the Kestrel Point lighthouse?", "Who founded the Zelk guild?",
    "Who leads the Velmora island council?", "How long is the ferry crossing to Hask?",
    "How many martens live in the Grey Hills?", "Where is Ostry Blue cheese aged?",
    "When did the Harrow Fell mine close?", "What is the record trout in Lake Ebba?",
    "How many students does the University of Velmora teach?", "What is Little Agnes?",
]


def synthetic_documents(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mir", "ven", "tas", "or", "bel", "quin", "dra", "sul", "fen",
                 "rho", "zan", "pel", "gur", "ith", "mo", "ser", "tal", "ux"]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 3)))

    things = ["bridge", "guild", "mill", "harbour", "school", "festival", "mine", "tower",
              "orchard", "railway", "library", "dam", "market", "chapel", "ferry"]
    docs = []
    for i in range(n):
        place, person = word().title(), f"{word().title()} {word().title()}"
        thing = rng.choice(things)
        text = (f"The {thing} of {place} was founded by {person} in {rng.randint(1600, 2020)}. "
                f"It is known for its {word()} and draws about {rng.randint(100, 90000):,} "
                f"visitors a year, most of them from {word().title()}.")
        docs.append(Document(id=f"syn{i:05d}", text=text, title=f"{thing} of {place}"))
    return docs


def dir_bytes(path: Path) -> dict[str, int]:
    sizes = {p.name: p.stat().st_size for p in path.iterdir()}
    return {"index_faiss_bytes": sizes["index.faiss"], "total_bytes": sum(sizes.values())}


def p50_ms(samples: list[float]) -> float:
    return round(1000 * statistics.median(samples), 3)


def time_queries(retriever: FaissRetriever, queries: list[str], top_k: int = 5) -> dict:
    retriever.retrieve(queries[0], top_k)  # warm-up
    retrieve_s = []
    for query in queries:
        started = time.perf_counter()
        retriever.retrieve(query, top_k)
        retrieve_s.append(time.perf_counter() - started)
    vectors = retriever.embedder.encode(queries)
    search_s = []
    for row in range(len(queries)):
        started = time.perf_counter()
        retriever.index.search(vectors[row:row + 1], top_k)
        search_s.append(time.perf_counter() - started)
    return {"queries": len(queries), "top_k": top_k, "retrieve_p50_ms": p50_ms(retrieve_s),
            "retrieve_p95_ms": round(1000 * float(np.percentile(retrieve_s, 95)), 3),
            "search_only_p50_ms": p50_ms(search_s)}


def bench_demo(workdir: Path) -> dict:
    started = time.perf_counter()
    retriever = FaissRetriever.build(DEMO, progress=False)
    build_s = time.perf_counter() - started
    retriever.save(workdir / "demo")
    return {"documents": retriever.manifest["documents"], "chunks": len(retriever.chunks),
            "index": "flat", "build_s": round(build_s, 3), **dir_bytes(workdir / "demo"),
            **time_queries(retriever, DEMO_QUERIES * 5)}


def bench_synthetic(workdir: Path, n: int = 10_000) -> dict:
    docs = synthetic_documents(n)
    sample = random.Random(1).sample(docs, 100)
    queries = [d.text.split(".")[0] for d in sample]  # each doc's own first sentence
    started = time.perf_counter()
    flat = FaissRetriever.build(docs, progress=True)
    flat_build_s = time.perf_counter() - started
    assert len(flat.chunks) == n, len(flat.chunks)
    flat.save(workdir / "flat")
    out = {"documents": n, "chunks": n,
           "flat": {"build_s": round(flat_build_s, 3), **dir_bytes(workdir / "flat"),
                    **time_queries(flat, queries)}}

    vectors = flat.index.reconstruct_n(0, n)
    settings = IndexSettings(index="ivf")
    started = time.perf_counter()
    index, params = _make_index(settings, vectors)
    ivf_index_s = time.perf_counter() - started
    embed_s = flat_build_s - _flat_add_seconds(vectors)
    manifest = {**flat.manifest, "index": {"type": "ivf", "metric": "inner_product", **params,
                                           "ntotal": int(index.ntotal)}}
    ivf = FaissRetriever(index, flat.chunks, flat.embedder, manifest)
    ivf.save(workdir / "ivf")
    ivf = FaissRetriever.load(workdir / "ivf", embedder=flat.embedder)
    qv = flat.embedder.encode(queries)
    _, exact = flat.index.search(qv, 10)
    _, approx = ivf.index.search(qv, 10)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact,
                                                                        strict=True)]))
    top1 = float(np.mean(approx[:, 0] == exact[:, 0]))
    out["ivf"] = {**params, "build_s": round(embed_s + ivf_index_s, 3),
                  "index_only_s": round(ivf_index_s, 3), **dir_bytes(workdir / "ivf"),
                  **time_queries(ivf, queries), "recall_at_10_vs_flat": round(recall, 4),
                  "top1_agreement_with_flat": round(top1, 4)}
    # the planted-fact check at scale: a doc's own first sentence retrieves that doc first
    hits = [r[0].doc_id for r in [[flat.chunks[i] for i in row[:1]] for row in exact]]
    out["flat"]["self_retrieval_at_1"] = round(
        float(np.mean([h == d.id for h, d in zip(hits, sample, strict=True)])), 4)
    return out


def _flat_add_seconds(vectors: np.ndarray) -> float:
    started = time.perf_counter()
    faiss.IndexFlatIP(vectors.shape[1]).add(vectors)
    return time.perf_counter() - started


def main() -> int:
    embedder = default_embedder()
    print(f"embedder {embedder.id} ({embedder.dims} dims), torch threads "
          f"{torch.get_num_threads()}", file=sys.stderr)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(),
                        "faiss": faiss.__version__, "torch": torch.__version__},
            "embedder": embedder.describe(),
            "demo": bench_demo(workdir),
            "synthetic_10k": bench_synthetic(workdir),
        }
    # the machine is shared: a load average above the core count means slower numbers
    results["machine"]["loadavg_1m_before_after"] = [round(load_before[0], 2),
                                                     round(os.getloadavg()[0], 2)]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
