"""The real-text case set: passages of Python's own reference documentation with planted facts.

Documents: prose paragraphs of ``pydoc_data.topics`` (the language reference shipped with
CPython; nobody in this project wrote it), hard-wrapped lines joined, code blocks and grammar
left out, cut into passages of at least 1,000 characters. One sentence of a passage is edited
into a planted fact with an invented value (a made-up name or number no model can know), so
only that sentence supports an answer naming the value. Two kinds of case:

- ``multi``: two facts planted in two different passages; the query asks both, the answer
  (teacher-forced) states both in two sentences, and each claim (sentence) of the answer is
  backed by its own planted sentence;
- ``redundant``: one fact planted twice in two passages in different wording; the answer copies
  the first wording, and the claim is the value's span.

Certified by regeneration with the audit model, never by relyscope's scores: for every fact of
a ``multi`` case, the greedy answer to that fact's question alone names the value with the
full context and does not without the planted sentence; for a ``redundant`` case the greedy
answer names the value with the full context and without either copy alone, and does not
without both. Candidates that fail are dropped (and counted by reason).

``python -m bench.realtext build`` writes the certified cases to bench/data/realtext.jsonl
(with their certificates); ``python -m bench.realtext evaluate`` audits them at sentence
granularity with per-claim attribution and writes bench/results/realtext.{json,md}:
per-claim top-1 accuracy, redundant-sources on value claims, and the forward passes of each
audit with and without claims (they must be equal).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench import machine  # noqa: E402
from bench.cases import invented_word  # noqa: E402
from bench.report import write_json  # noqa: E402
from relyscope.case import Case, split_sentences  # noqa: E402
from relyscope.models import CausalLM, Variant  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "realtext.jsonl"
RESULTS = ROOT / "bench" / "results"
SYSTEM = "Answer the question in one or two sentences using the context."
MIN_CHARS, MAX_CHARS = 1000, 1500
GEN_TOKENS = 40


@dataclass(frozen=True)
class Fact:
    """A planted fact: its sentence, a paraphrase (for redundant cases), the question that asks
    it and the answer sentence, each with {v} for the invented value."""

    key: str
    sentence: str
    paraphrase: str
    question: str
    answer: str
    value_kind: str  # word | name | number


FACTS = [
    Fact("codename", "During its development, the new parser was known by the codename {v}.",
         "Internally, the team referred to the rewritten parser as {v}.",
         "What codename was the new parser known by?",
         "The new parser was known by the codename {v}.", "word"),
    Fact("author", "The first draft of the buffer protocol was written by {v}.",
         "{v} wrote the earliest draft of the buffer protocol.",
         "Who wrote the first draft of the buffer protocol?",
         "The first draft of the buffer protocol was written by {v}.", "name"),
    Fact("sprint", "The core developers hold their yearly sprint in the town of {v}.",
         "Every year the core developers gather for a sprint in {v}.",
         "In which town do the core developers hold their yearly sprint?",
         "The core developers hold their yearly sprint in {v}.", "word"),
    Fact("cache", "The bytecode cache keeps at most {v} entries per module.",
         "No more than {v} entries per module are kept in the bytecode cache.",
         "How many entries per module does the bytecode cache keep at most?",
         "The bytecode cache keeps at most {v} entries per module.", "number"),
    Fact("server", "Nightly builds of the documentation are published from a server named {v}.",
         "The server that publishes the nightly documentation builds is called {v}.",
         "What is the name of the server that publishes the nightly documentation builds?",
         "The nightly documentation builds are published from a server named {v}.", "word"),
    Fact("mascot", "The mascot of the interpreter project is a heron named {v}.",
         "A heron called {v} serves as the mascot of the interpreter project.",
         "What is the name of the interpreter project's mascot?",
         "The interpreter project's mascot is a heron named {v}.", "word"),
    Fact("processor", "The reference test machine runs on a processor code-named {v}.",
         "A processor code-named {v} powers the reference test machine.",
         "What is the code name of the reference test machine's processor?",
         "The reference test machine runs on a processor code-named {v}.", "word"),
    Fact("docstring", "The style guide limits docstring summaries to {v} words.",
         "Under the style guide, a docstring summary may be at most {v} words long.",
         "To how many words does the style guide limit docstring summaries?",
         "The style guide limits docstring summaries to {v} words.", "number"),
]


# -- documents -------------------------------------------------------------------------------


def prose_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a reference topic: no code, grammar, headings or lead-ins."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.split("\n")
        if any(line.startswith((" ", "\t")) for line in lines):
            continue  # code, grammar and indented lists
        if len(lines) > 1 and set(lines[1].strip()) <= set("*=-~^"):
            continue  # a heading
        if "::=" in paragraph or ">>>" in paragraph:
            continue
        joined = re.sub(r"\s+", " ", " ".join(line.strip() for line in lines)).strip()
        if len(joined) >= 120 and joined[0].isupper() and joined.endswith("."):
            out.append(joined)
    return out


def passages() -> list[tuple[str, str]]:
    """(topic, passage) pairs: consecutive prose paragraphs of one topic, 1,000-1,500 chars."""
    from pydoc_data.topics import topics

    found: list[tuple[str, str]] = []
    for name in sorted(topics):
        current: list[str] = []
        for paragraph in prose_paragraphs(topics[name]):
            if sum(map(len, current)) + len(paragraph) > MAX_CHARS:
                current = []
                if len(paragraph) > MAX_CHARS:
                    continue
            current.append(paragraph)
            if sum(len(p) + 1 for p in current) >= MIN_CHARS:
                found.append((name, " ".join(current)))
                break
    return found


def plant(passage: str, sentence: str, rng: random.Random) -> tuple[str, int] | None:
    """The passage with one of its inner sentences replaced by `sentence` (the edit), and the
    planted sentence's index among the passage's sentences; None when it would not split."""
    pieces = [text for text, _start in split_sentences(passage)]
    if len(pieces) < 4:
        return None
    index = rng.randrange(1, len(pieces) - 1)
    pieces[index] = sentence
    edited = " ".join(pieces)
    if [t for t, _ in split_sentences(edited)][index] != sentence:
        return None
    return edited, index


def value_for(kind: str, rng: random.Random) -> str:
    if kind == "number":
        return str(rng.randrange(23, 98))
    word = invented_word(rng, rng.choice((2, 3)))
    if kind == "name":
        return f"{rng.choice(['Anna', 'Tomas', 'Ilse', 'Marek', 'Nora', 'Emil'])} {word}"
    return word


# -- candidates ---------------------------------------------------------------------------------


def candidates(n_multi: int, n_redundant: int, seed: int, per_case: int = 3
               ) -> list[dict[str, Any]]:
    """Uncertified candidate cases: a JSON case dict with `metadata.planted` ground truth."""
    rng = random.Random(seed)
    docs = passages()
    out: list[dict[str, Any]] = []
    for number in range(n_multi + n_redundant):
        kind = "multi" if number < n_multi else "redundant"
        chosen = rng.sample(docs, per_case)
        texts = [text for _name, text in chosen]
        ids = [f"{name}-{i}" for i, (name, _t) in enumerate(chosen)]
        facts = rng.sample(FACTS, 2 if kind == "multi" else 1)
        values = [value_for(f.value_kind, rng) for f in facts]
        slots = rng.sample(range(per_case), 2)
        planted: list[dict[str, Any]] = []
        sentences = ([f.sentence.format(v=v) for f, v in zip(facts, values, strict=True)]
                     if kind == "multi" else [facts[0].sentence.format(v=values[0]),
                                              facts[0].paraphrase.format(v=values[0])])
        ok = True
        for slot, sentence in zip(slots, sentences, strict=True):
            result = plant(texts[slot], sentence, rng)
            if result is None:
                ok = False
                break
            texts[slot], index = result
            planted.append({"unit": f"{ids[slot]}#{index}", "sentence": sentence})
        if not ok:
            continue
        if kind == "multi":
            query = " ".join(f.question for f in facts)
            answer = " ".join(f.answer.format(v=v) for f, v in zip(facts, values, strict=True))
            claims: Any = "auto"
            gold = [[p["unit"]] for p in planted]
        else:
            query = facts[0].question
            answer = facts[0].answer.format(v=values[0])
            start = answer.index(values[0])
            claims = [[start, start + len(values[0])]]
            gold = [[p["unit"] for p in planted]]
        out.append({
            "id": f"real-{kind}-{number}", "system": SYSTEM, "query": query,
            "sources": [{"id": i, "text": t, "title": None,
                         "metadata": {"document": f"pydoc_data.topics[{i.rsplit('-', 1)[0]!r}]"}}
                        for i, t in zip(ids, texts, strict=True)],
            "answer": answer, "claims": claims,
            "metadata": {"kind": kind, "planted": planted, "gold_per_claim": gold,
                         "facts": [f.key for f in facts], "values": values,
                         "questions": [f.question for f in facts]}})
    return out


# -- certification by regeneration ----------------------------------------------------------------


def greedy(lm: CausalLM, case: Case, query: str, removed: list[str]) -> str:
    """The model's greedy answer to `query` without the `removed` sentence units."""
    asked = case.model_copy(update={"query": query, "answer": None})
    renderer = lm.renderer(asked, granularity="sentence")
    prompt = renderer.render(Variant.without(removed), target=" ").prompt_ids
    return lm.generate(prompt, max_new_tokens=GEN_TOKENS)


def names(answer: str, value: str) -> bool:
    def norm(text: str) -> str:
        return re.sub(r"[\s,.]", "", text.lower())
    return norm(value) in norm(answer)


def certify(lm: CausalLM, data: dict[str, Any]) -> dict[str, Any]:
    """Regenerate under the planted removals; the certificate says what each answer was."""
    case = Case.from_dict(data)
    meta = data["metadata"]
    runs: list[dict[str, Any]] = []

    def check(query: str, removed: list[str], value: str, expect: bool) -> bool:
        answer = greedy(lm, case, query, removed)
        runs.append({"query": query, "removed": removed, "answer": answer,
                     "expect_value": expect, "ok": names(answer, value) == expect})
        return runs[-1]["ok"]

    ok = True
    if meta["kind"] == "multi":
        for question, value, planted in zip(meta["questions"], meta["values"], meta["planted"],
                                            strict=True):
            ok = ok and check(question, [], value, True)
            ok = ok and check(question, [planted["unit"]], value, False)
    else:
        question, value = meta["questions"][0], meta["values"][0]
        first, second = (p["unit"] for p in meta["planted"])
        for removed, expect in (([], True), ([first], True), ([second], True),
                                ([first, second], False)):
            ok = ok and check(question, removed, value, expect)
    failed = next((r for r in runs if not r["ok"]), None)
    why = None
    if failed is not None:
        why = ("value missing with its sentence" if failed["expect_value"]
               else "value kept without its sentence")
    return {"certified": ok, "why": why, "generations": len(runs), "runs": runs}


def build(lm: CausalLM, n_multi: int, n_redundant: int, seed: int, log=print
          ) -> dict[str, Any]:
    started = time.time()
    kept: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for data in candidates(n_multi, n_redundant, seed):
        cert = certify(lm, data)
        log(f"{data['id']}: {'certified' if cert['certified'] else cert['why']}")
        if cert["certified"]:
            data["metadata"]["certificate"] = cert
            kept.append(data)
        else:
            dropped[cert["why"]] = dropped.get(cert["why"], 0) + 1
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in kept),
                    encoding="utf-8")
    return {"certified": len(kept), "dropped": dropped, "seconds": time.time() - started}


def load_cases(path: Path = DATA) -> list[Case]:
    return [Case.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line]


# -- evaluation ----------------------------------------------------------------------------------


def evaluate(lm: CausalLM, cases: list[Case], log=print, compare_passes: int = 1,
             on_case: Any = None) -> dict[str, Any]:
    """Per-claim top-1 accuracy and redundant-sources on value claims, and the passes of the
    same audit without claims (each run on an empty score cache)."""
    from relyscope.audits import run_audit
    from relyscope.config import AuditConfig
    from relyscope.models.scoring import MemoryScoreCache

    config = AuditConfig(methods=("attention", "loo"), granularity="sentence")
    rows: list[dict[str, Any]] = []
    for case in cases:
        runs = {}
        # the same audit without claims, on the first few cases (tests hold every case to it)
        for claims in ((None, case.claims) if len(rows) < compare_passes else (case.claims,)):
            lm.scorer.cache = MemoryScoreCache()
            started = time.time()
            report = run_audit(case.model_copy(update={"claims": None}), lm,
                               config.model_copy(update={"claims": claims}))
            runs[claims is not None] = (report, time.time() - started)
        report, seconds = runs[True]
        plain = runs[False][0] if False in runs else None
        gold = case.metadata["gold_per_claim"]
        for claim, gold_units in zip(report.claims, gold, strict=True):
            top = claim.top_units[0] if claim.top_units else None
            rows.append({"case": case.id, "kind": case.metadata["kind"], "claim": claim.text,
                         "gold": gold_units, "top1": top, "top1_ok": top in gold_units,
                         "citations": claim.citations, "verdicts": claim.verdicts,
                         "verdict": claim.verdict,
                         "redundant": "redundant-sources" in claim.verdicts,
                         "whole_answer_verdicts": report.verdicts,
                         "units": len(report.units),
                         "tokens_processed": report.cost.get("tokens"),
                         "passes": report.cost["forward_passes"],
                         "passes_without_claims": plain and plain.cost["forward_passes"],
                         "claims_passes": report.cost["claims"]["forward_passes"],
                         "seconds": seconds})
        log(f"{case.id}: " + "; ".join(f"{r['top1']} ({'ok' if r['top1_ok'] else 'MISS'})"
                                       for r in rows[-len(gold):]))
        if on_case is not None:  # results so far, written after every case
            on_case(summarize(rows, config.model_dump(mode="json")))
    return summarize(rows, config.model_dump(mode="json"))


def summarize(rows: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    multi = [r for r in rows if r["kind"] == "multi"]
    redundant = [r for r in rows if r["kind"] == "redundant"]
    return {
        "config": config,
        "per_claim_top1": _share([r["top1_ok"] for r in multi]),
        "claims": len(multi),
        "redundant_sources_on_value_claims": _share([r["redundant"] for r in redundant]),
        "redundant_claims": len(redundant),
        "redundant_whole_answer": _share(["redundant-sources" in r["whole_answer_verdicts"]
                                          for r in redundant]),
        "extra_passes_for_claims": sum(r["passes"] - r["passes_without_claims"] for r in rows
                                       if r["passes_without_claims"] is not None),
        "compared_without_claims": sum(r["passes_without_claims"] is not None for r in rows),
        "claims_forward_passes": sum(r["claims_passes"] for r in rows),
        "rows": rows}


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def markdown(result: dict[str, Any]) -> str:
    ev = result.get("evaluation", {})
    lines = ["# Real-text case set (issue 14)", "",
             f"Commit `{result['commit']}`; {result['machine']['cpu']}, "
             f"load {result['machine']['loadavg_start']} at start.", ""]
    if "build" in result:
        b = result["build"]
        lines += [f"Certified by regeneration: {b['certified']} cases kept; dropped: "
                  f"{b['dropped'] or 'none'} ({b['seconds']:.0f} s).", ""]
    if ev:
        lines += ["| measure | value |", "|---|---|",
                  f"| per-claim top-1 = the claim's planted sentence (multi-claim cases) | "
                  f"{_pct(ev['per_claim_top1'])} of {ev['claims']} claims |",
                  f"| `redundant-sources` on the value claim (redundant cases) | "
                  f"{_pct(ev['redundant_sources_on_value_claims'])} of "
                  f"{ev['redundant_claims']} |",
                  f"| the whole-answer view says `redundant-sources` | "
                  f"{_pct(ev['redundant_whole_answer'])} |",
                  f"| extra forward passes for claims ({ev['compared_without_claims']} claims "
                  f"whose audit also ran without claims) | {ev['extra_passes_for_claims']} |",
                  f"| forward passes spent on claims, all audits (report cost) | "
                  f"{ev['claims_forward_passes']} |", "",
                  "| case | kind | units | claim | gold | top-1 | verdicts | passes (no claims) |"
                  " s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in ev["rows"]:
            lines.append(f"| {r['case']} | {r['kind']} | {r['units']} | {r['claim']} | "
                         f"{', '.join(r['gold'])} | {r['top1']}{'' if r['top1_ok'] else ' ✗'} "
                         f"| {', '.join(r['verdicts']) or '—'} | {r['passes']} "
                         f"({r['passes_without_claims']}) | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtext", description=__doc__)
    parser.add_argument("what", choices=["build", "evaluate", "merge", "all"])
    parser.add_argument("--multi", type=int, default=12)
    parser.add_argument("--redundant", type=int, default=8)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N cases")
    parser.add_argument("--kind", choices=["multi", "redundant"], default=None,
                        help="evaluate only the cases of this kind")
    parser.add_argument("--part", default=None,
                        help="evaluate: write to realtext-<part>.json/md (parallel runs); "
                             "merge: combine the parts named here, comma-separated")
    args = parser.parse_args(argv)
    if args.what == "merge":
        return merge(args.part.split(","))
    lm = CausalLM.load()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    out = RESULTS / "realtext.json"
    if args.part and args.what == "evaluate":
        out = RESULTS / f"realtext-{args.part}.json"
    result: dict[str, Any] = (json.loads(out.read_text()) if out.exists() else {})
    result.update({"commit": commit, "machine": machine.machine_info()})
    if args.what in ("build", "all"):
        result["build"] = build(lm, args.multi, args.redundant, args.seed,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.what in ("evaluate", "all"):
        cases = [c for c in load_cases() if args.kind in (None, c.metadata["kind"])]

        def save(evaluation: dict[str, Any]) -> None:
            result["evaluation"] = evaluation
            result["machine"]["loadavg_end"] = machine.load()
            write_json(out, result)
            out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")

        save(evaluate(lm, cases[:args.limit], on_case=save,
                      log=lambda m: print(m, file=sys.stderr, flush=True)))
    result["machine"]["loadavg_end"] = machine.load()
    write_json(out, result)
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return 0


def merge(parts: list[str]) -> int:
    """realtext.json/md with the evaluation rows of parallel parts (the build kept)."""
    out = RESULTS / "realtext.json"
    result = json.loads(out.read_text())
    loaded = [json.loads((RESULTS / f"realtext-{part}.json").read_text()) for part in parts]
    rows = [row for part in loaded for row in part["evaluation"]["rows"]]
    for row in rows:  # parts written before the key was renamed: the audit's tokens processed
        if "prompt_tokens" in row:
            row["tokens_processed"] = row.pop("prompt_tokens")
    result["evaluation"] = summarize(rows, loaded[0]["evaluation"]["config"])
    result["evaluation"]["parts"] = {part: {"commit": data["commit"],
                                            "machine": data["machine"]}
                                     for part, data in zip(parts, loaded, strict=True)}
    write_json(out, result)
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
