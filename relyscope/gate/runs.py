"""Run an evaluation set through one retrieval configuration: retrieve, answer, audit.

A configuration file (JSON or TOML) names how retrieval is done; everything else (model,
audit settings) should be the same on both sides of a gate:

    index = "indexes/main"        # a saved index folder, or
    corpus = "docs.jsonl"         # documents to index on the fly
    exclude_documents = ["a"]     # leave documents out (a corpus only)
    top_k = 3
    shuffle_seed = 7              # optional: serve a random permutation of the index's chunks
    seed = 0                      # the audit's seed
    [audit]
    methods = "attention,loo"

Scores go through the backend's score cache, so a re-run of the same evaluation on the same
model revision skips the forward passes it has already done.
"""

from __future__ import annotations

import json
import random
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relyscope.case import CaseError, Source
from relyscope.config import AuditConfig
from relyscope.models.packaged import relyscope_home
from relyscope.report_model import Report

if TYPE_CHECKING:  # the model stack (torch) loads with the model, not with `relyscope gate`
    from relyscope.models import CausalLM
    from relyscope.models.loading import ModelOptions

DEFAULT_GATE_AUDIT = {"methods": ("attention", "loo")}
#: off a terminal (a CI log), at most one progress line per this many seconds
PROGRESS_LINE_EVERY_S = 30.0

T = TypeVar("T")


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: str | None = None
    corpus: str | None = None
    exclude_documents: list[str] = Field(default_factory=list)
    top_k: int = Field(default=3, ge=1, le=100)
    shuffle_seed: int | None = None
    seed: int = 0
    system: str | None = None
    audit: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_GATE_AUDIT))

    @classmethod
    def from_file(cls, path: str | Path) -> RetrievalConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
            config = cls.model_validate(data)
        except (OSError, ValueError) as err:
            if isinstance(err, ValidationError):
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise CaseError(where, first["msg"], record=str(path)) from None
            raise ValueError(f"{path}: {err}") from None
        if (config.index is None) == (config.corpus is None):
            raise CaseError("index", "give exactly one of 'index' and 'corpus'", record=str(path))
        if config.exclude_documents and config.index is not None:
            raise CaseError("exclude_documents", "only applies to a 'corpus'", record=str(path))
        base = path.parent
        for key in ("index", "corpus"):
            value = getattr(config, key)
            if value is not None and not Path(value).is_absolute():
                setattr(config, key, str(base / value))
        return config

    def audit_config(self) -> AuditConfig:
        return AuditConfig.from_dict({**self.audit, "seed": self.seed})


class _ShuffledRetriever:
    """A deliberately broken index: each query gets chunks from a fixed random permutation."""

    def __init__(self, inner: Any, seed: int) -> None:
        self.inner = inner
        self.seed = seed

    def retrieve(self, query: str, top_k: int = 5) -> list[Source]:
        ranked = self.inner.retrieve(query, len(self.inner.chunks))
        order = list(range(len(ranked)))
        random.Random(self.seed).shuffle(order)
        return [ranked[i] for i in order[:top_k]]


def build_retriever(config: RetrievalConfig) -> Any:
    from relyscope.retrievers.documents import load_documents
    from relyscope.retrievers.faiss_index import FaissRetriever

    if config.index is not None:
        retriever = FaissRetriever.load(config.index)
    else:
        docs = load_documents(config.corpus)  # type: ignore[arg-type]
        excluded = set(config.exclude_documents)
        unknown = excluded - {d.id for d in docs}
        if unknown:
            raise CaseError("exclude_documents", f"not in the corpus: {sorted(unknown)}")
        retriever = FaissRetriever.build([d for d in docs if d.id not in excluded],
                                         progress=False)
    if config.shuffle_seed is not None:
        return _ShuffledRetriever(retriever, config.shuffle_seed)
    return retriever


def default_cache_file() -> Path:
    return relyscope_home() / "cache" / "scores.sqlite"


def load_model(options: ModelOptions, *, cache_file: str | Path | None) -> CausalLM:
    """The gate's model, its scores kept in `cache_file` across runs (None: in memory only)."""
    from relyscope.models.cache import SqliteScoreCache

    return options.load(cache=SqliteScoreCache(cache_file) if cache_file is not None else None)


def read_eval(path: str | Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CaseError("", f"not valid JSON ({err})", record=f"{path}:{number}") from None
        if not isinstance(row, dict) or not str(row.get("query", "")).strip():
            raise CaseError("query", "each line needs a non-empty 'query'",
                            record=f"{path}:{number}")
        rows.append({"id": str(row.get("id", f"line{number}")), "query": row["query"]})
    if not rows:
        raise ValueError(f"{path}: the evaluation set is empty")
    return rows


def run_configuration(eval_rows: Sequence[dict[str, str]], config_path: str | Path,
                      lm: CausalLM, *, save: str | Path | None = None, label: str = "run"
                      ) -> list[Report]:
    """Answer and audit every evaluation query under one retrieval configuration."""
    from relyscope.pipeline import Pipeline
    from relyscope.report import jsonl_line

    config = RetrievalConfig.from_file(config_path)
    audit = config.audit_config()
    pipeline_kwargs = {"system": config.system} if config.system else {}
    pipeline = Pipeline(build_retriever(config), lm, **pipeline_kwargs)
    reports = []
    for row in progress(eval_rows, label):
        result = pipeline.ask(row["query"], top_k=config.top_k, audit=audit, case_id=row["id"])
        assert result.report is not None
        reports.append(result.report)
    if save is not None:
        folder = Path(save)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{label}.jsonl").write_text("".join(jsonl_line(r) for r in reports),
                                               encoding="utf-8")
    return reports


def progress(rows: Sequence[T], label: str, *, stream: IO[str] | None = None,
             every_s: float = PROGRESS_LINE_EVERY_S) -> Iterator[T]:
    """`rows`, reporting progress on `stream` (default stderr): tqdm's bar on a terminal; off
    one (CI logs, where a bar is hidden or one endless line of carriage returns) a plain line
    `label: done/total queries, N s` after the first query, then at most one per `every_s`
    seconds, and after the last, so a long gate shows it is alive without a line per query."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        from tqdm import tqdm

        yield from tqdm(rows, desc=label, unit="query", file=stream)
        return
    yield from _log_lines(rows, label, stream, every_s)


def _log_lines(rows: Sequence[T], label: str, stream: IO[str], every_s: float
               ) -> Iterator[T]:
    started = last = time.monotonic()
    for done, row in enumerate(rows, 1):
        yield row
        now = time.monotonic()
        if done == 1 or done == len(rows) or now - last >= every_s:
            print(f"{label}: {done}/{len(rows)} queries, {now - started:.0f} s", file=stream,
                  flush=True)
            last = now
