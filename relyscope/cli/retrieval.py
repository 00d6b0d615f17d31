"""`relyscope index` and `relyscope ask`: build a FAISS index, answer (and audit) from it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from relyscope.cli.options import add_model_options, model_options, parse_methods
from relyscope.config import AuditConfig
from relyscope.retrievers import IndexSettings
from relyscope.retrievers.documents import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    index = sub.add_parser("index", help="build a FAISS index from a folder of .txt/.md files "
                                         "or a DOCS.jsonl file")
    index.add_argument("docs", metavar="DOCS_DIR|DOCS.jsonl")
    index.add_argument("--out", required=True, metavar="INDEX_DIR", help="index directory")
    index.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_TOKENS,
                       help=f"embedder tokens per chunk, at most its window less 2 "
                            f"(default {DEFAULT_CHUNK_TOKENS})")
    index.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP_TOKENS,
                       help=f"embedder tokens shared by neighbouring chunks "
                            f"(default {DEFAULT_OVERLAP_TOKENS})")
    index.add_argument("--index", choices=("flat", "ivf"), default="flat",
                       help="flat: exact (default); ivf: inverted lists for large corpora")
    index.add_argument("--nlist", type=int, help="ivf: number of lists")
    index.add_argument("--nprobe", type=int, help="ivf: lists searched per query")
    index.add_argument("--embedder", help="a local sentence-transformers folder "
                                          "(default: the packaged all-MiniLM-L6-v2)")
    index.set_defaults(func=_cmd_index)

    ask = sub.add_parser("ask", help="retrieve from an index and answer with the local model")
    ask.add_argument("index_dir", metavar="INDEX_DIR")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=5)
    add_model_options(ask)
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--audit", metavar="METHODS", type=parse_methods,
                     help="also audit the answer with these methods (comma separated)")
    ask.add_argument("--json", action="store_true", help="print the case (and report) as JSON")
    ask.set_defaults(func=_cmd_ask)


def _cmd_index(args: argparse.Namespace) -> int:
    from relyscope.retrievers import Embedder, FaissRetriever

    settings = IndexSettings(chunk_size=args.chunk_size, overlap=args.overlap, index=args.index,
                             nlist=args.nlist, nprobe=args.nprobe)
    embedder = Embedder.load(args.embedder) if args.embedder else None
    retriever = FaissRetriever.build(Path(args.docs), embedder=embedder, settings=settings)
    out = retriever.save(args.out)
    manifest = retriever.manifest
    print(f"indexed {manifest['documents']} documents as {manifest['chunks']} chunks "
          f"({manifest['index']['type']}, {manifest['embedder']['id']}) into {out}",
          file=sys.stderr)
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    # imported here: the pipeline brings the agents stack (LangChain), seconds no other
    # command should pay at start
    from relyscope.pipeline import DEFAULT_SYSTEM, Pipeline
    from relyscope.retrievers import FaissRetriever

    options = model_options(args)
    retriever = FaissRetriever.load(args.index_dir)  # fails fast, before the model loads
    audit = AuditConfig.from_dict({"methods": list(args.audit)}) if args.audit else None
    lm = options.load()
    pipeline = Pipeline(retriever, lm, system=args.system or DEFAULT_SYSTEM)
    result = pipeline.ask(args.question, top_k=args.top_k, audit=audit)
    if args.json:
        out = {"case": result.case.to_dict(), "timings": result.timings}
        if result.report is not None:
            out["report"] = result.report.to_dict()
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(result.answer)
    print("\nsources:")
    for source in result.sources:
        print(f"  {source.retrieval_score:6.3f}  {source.id}  {source.title or ''}")
    if result.report is not None:
        print("\nreliance ranking:")
        for method in result.report.methods:
            print(f"  {method}: {', '.join(result.report.ranking(method)[:3])}")
    return 0
