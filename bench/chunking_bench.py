"""Chunking benchmark: where does the answering passage rank, old splitter vs new?

The document is Python's own language reference page on compound statements (50 KB,
``pydoc_data.topics["compound"]``, shipped with CPython: nobody here wrote it). Each question
has an answering sentence in it. For every splitter the document is chunked, all chunks are
embedded with the packaged all-MiniLM-L6-v2 and ranked against the question by cosine
similarity; the rank reported is that of the best-ranked chunk holding the whole answering
sentence (when the splitter cut the sentence, the best-ranked chunk holding part of it, and
the question is counted as `cut`).

Splitters: `chars-800` is relyscope's previous splitter (800-char windows cut at whitespace,
120 chars of overlap), `paragraphs` splits at blank lines only, `tokens-200` and `tokens-100`
are the new structure-aware splitter (sizes in embedder tokens). Run:
``python -m bench.chunking_bench``; writes bench/results/chunking.json and chunking.md.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np

from relyscope.retrievers import default_embedder
from relyscope.retrievers.documents import chunk_spans, token_counter

RESULTS = Path(__file__).parent / "results"
TOPIC = "compound"
QUESTIONS = [
    ("When does the else clause of a while loop run?",
     'if the expression is false (which may be the first time it is tested) the suite of the '
     '"else" clause, if present, is executed'),
    ("When does the else clause of a for loop run?",
     'When the iterator is exhausted, the suite in the "else" clause, if present, is executed'),
    ("What happens to the exception variable named with as after the except clause ends?",
     'When an exception has been assigned using "as target", it is cleared at the end of the '
     '"except" clause.'),
    ("What happens to a saved exception when the finally clause returns?",
     'If the "finally" clause executes a "return", "break" or "continue" statement, the saved '
     'exception is discarded'),
    ("What is the return value of __enter__ used for in a with statement?",
     'If a target was included in the "with" statement, the return value from "__enter__()" '
     'is assigned to it.'),
    ("When is the guard of a case block evaluated?",
     'If the pattern succeeds, the corresponding guard (if present) is evaluated.'),
    ("When are default parameter values evaluated?",
     'Default parameter values are evaluated from left to right when the function definition '
     'is executed.'),
    ("Can classes be decorated like functions?",
     'Classes can also be decorated: just like when decorating functions,'),
    ("Where can await expressions be used?",
     '"await" expressions, "async for" and "async with" can only be used in the body of a '
     'coroutine function.'),
]


def old_char_spans(text: str, chunk_size: int = 800, overlap: int = 120
                   ) -> list[tuple[int, int]]:
    """relyscope's splitter before structure-aware chunking (kept here to compare with)."""
    words = [m.span() for m in re.finditer(r"\S+", text)]
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


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in re.finditer(r"(?:(?!\n\n).)+", text, flags=re.DOTALL):
        piece = match.group()
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((match.start() + lead, match.start() + len(piece.rstrip())))
    return spans


def answer_span(text: str, sentence: str) -> tuple[int, int]:
    """Char span of `sentence` in `text`, matching any run of whitespace for a space."""
    pattern = r"\s+".join(re.escape(word) for word in sentence.split())
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"answer not in the document: {sentence[:60]!r}")
    return match.span()


def main() -> int:
    text = topics[TOPIC]
    embedder = default_embedder()
    count = token_counter(embedder.model.tokenizer)
    splitters = {
        "chars-800": old_char_spans(text),
        "paragraphs": paragraph_spans(text),
        "tokens-200": chunk_spans(text, 200, 30, count),
        "tokens-100": chunk_spans(text, 100, 15, count),
    }
    questions = [q for q, _ in QUESTIONS]
    answers = [answer_span(text, a) for _, a in QUESTIONS]
    query_vectors = embedder.encode(questions)
    results: dict[str, dict] = {}
    for name, spans in splitters.items():
        started = time.perf_counter()
        vectors = embedder.encode([text[s:e] for s, e in spans])
        order = np.argsort(-(query_vectors @ vectors.T), axis=1, kind="stable")
        ranks, cut = [], []
        for qi, (a_start, a_end) in enumerate(answers):
            rank_of = {int(row): r + 1 for r, row in enumerate(order[qi])}
            whole = [rank_of[i] for i, (s, e) in enumerate(spans) if s <= a_start and a_end <= e]
            part = [rank_of[i] for i, (s, e) in enumerate(spans) if s < a_end and a_start < e]
            ranks.append(min(whole or part))
            cut.append(not whole)
        tokens = [count(text[s:e]) for s, e in spans]
        results[name] = {
            "chunks": len(spans), "max_tokens": max(tokens),
            "over_window": sum(t > 254 for t in tokens),
            "ranks": ranks, "cut": cut,
            "mean_rank": round(float(np.mean(ranks)), 2),
            "mrr": round(float(np.mean([1 / r for r in ranks])), 3),
            **{f"hit@{k}": sum(r <= k for r in ranks) for k in (1, 3, 4)},
            "seconds": round(time.perf_counter() - started, 2),
        }
    out = {"document": f"pydoc_data.topics[{TOPIC!r}] (Python {sys.version.split()[0]})",
           "document_chars": len(text), "document_tokens": count(text),
           "embedder": embedder.describe(), "questions": questions, "splitters": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chunking.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "chunking.md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    names = list(out["splitters"])
    lines = [f"# Chunking: rank of the answering passage ({len(out['questions'])} questions)", "",
             f"Document: {out['document']}, {out['document_chars']} chars, "
             f"{out['document_tokens']} embedder tokens. Rank among all chunks by cosine "
             "similarity (all-MiniLM-L6-v2); `*` = the splitter cut the answering sentence.", "",
             "| question | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for qi, question in enumerate(out["questions"]):
        cells = [f"{r['ranks'][qi]}{'*' if r['cut'][qi] else ''}"
                 for r in out["splitters"].values()]
        lines.append(f"| {question} | " + " | ".join(cells) + " |")
    for key in ("chunks", "max_tokens", "over_window", "mean_rank", "mrr", "hit@1", "hit@3",
                "hit@4"):
        label = {"over_window": "chunks over the 254-token window"}.get(key, key)
        lines.append(f"| **{label}** | " + " | ".join(str(r[key]) for r in
                                                      out["splitters"].values()) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
