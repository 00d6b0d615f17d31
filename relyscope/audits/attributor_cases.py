"""Seeded training cases for the learned attributor: planted facts, real text, tool traces.

Planted cases hide one invented fact (or two copies of it) among unrelated sentences, so the
answer can only come from there; real-text cases pair a question of the demo evaluation set
with its passage and other passages of the demo corpus (`real_split` keeps training and
held-out questions apart: even and odd positions); tool traces give the answer's value in one
of two tool outputs. Some cases are split into sentence units, so the weights see both unit
granularities.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from relyscope.case import Case, Granularity

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SYSTEM = "Answer the question in one sentence using the context."
TOOL_SYSTEM = "Answer the question in one sentence using the context and tool results."

_FACTS = (  # question, fact, value kind
    ("Who founded the {e} guild?", "The {e} guild was founded by {v}.", "person"),
    ("What is the capital of {e}?", "The capital of {e} is {v}.", "word"),
    ("How tall is the {e} tower?", "The {e} tower is {v} metres tall.", "number"),
    ("In which year did the {e} bridge open?", "The {e} bridge opened in {v}.", "year"),
    ("Who composed the opera {e}?", "The opera {e} was composed by {v}.", "person"),
    ("How long is the {e} river?", "The {e} river is {v} kilometres long.", "number"),
    ("Who is the captain of the ship {e}?", "The captain of the ship {e} is {v}.", "person"),
    ("Who is the mayor of the town of {e}?", "The mayor of the town of {e} is {v}.", "person"),
)
_RESTATED = "According to another record, the answer about {e} is {v}."
_FILLERS = (
    "The {x} river floods every spring, covering the valley farms with silt.",
    "Copper prices rose sharply in the markets of {x} last year.",
    "Lighthouses on the {x} coast use rotating lenses to guide ships at night.",
    "The {x} festival celebrates the first snowfall with paper lanterns.",
    "Bakers in {x} sell a dark rye bread flavoured with caraway seeds.",
    "The {x} railway climbs through pine forests on a narrow gauge track.",
    "Farmers near {x} grow barley and keep a few goats on the hillsides.",
    "The museum of {x} holds a collection of old clocks and maps.",
    "Winters in {x} are long, and the lakes freeze for three months.",
    "A ferry links {x} to the islands twice a day in summer.",
)
_TOOLS = (  # tool, question, output
    ("get_temperature", "What is the temperature in {c} right now?", "{v} degrees Celsius"),
    ("get_population", "How many people live in {c}?", "{v} people"),
    ("get_wind_speed", "How fast is the wind blowing in {c}?", "{v} kilometres per hour"),
)
_FIRST = ("Anna", "Tomas", "Ilse", "Marek", "Sofia", "Oren", "Lidia", "Pavel", "Nora", "Emil")
_ONSETS = ("b", "br", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou")
_CODAS = ("", "n", "r", "l", "th", "k", "m", "s", "nd")

Kind = Literal["single", "redundant", "real", "tools"]


@dataclass(frozen=True)
class TrainingCase:
    case: Case
    kind: Kind
    granularity: Granularity
    gold: tuple[str, ...]  # the planted units (empty for real text)


class CaseMaker:
    def __init__(self, seed: int, real_split: Literal["train", "held_out"] = "train") -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()
        rows = [json.loads(line) for line in (DATA_DIR / "demo_eval.jsonl").open()]
        self.questions = rows[0::2] if real_split == "train" else rows[1::2]
        self.corpus = [json.loads(line) for line in (DATA_DIR / "demo_corpus.jsonl").open()]

    def word(self) -> str:
        while True:
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)
                        + self.rng.choice(_CODAS) for _ in range(self.rng.choice((2, 2, 3))))
            if w not in self.used and 4 <= len(w) <= 10:
                self.used.add(w)
                return w.capitalize()

    def value(self, kind: str) -> str:
        if kind == "person":
            return f"{self.rng.choice(_FIRST)} {self.word()}"
        if kind == "year":
            return str(self.rng.randint(1710, 1990))
        if kind == "number":
            return str(self.rng.randint(120, 2900))
        return self.word()

    def fillers(self, n: int) -> list[str]:
        return [self.rng.choice(_FILLERS).format(x=self.word()) for _ in range(n)]

    def planted(self, index: int, units: int, copies: int = 1) -> TrainingCase:
        question, fact, kind = _FACTS[index % len(_FACTS)]
        entity, value = self.word(), self.value(kind)
        facts = [fact.format(e=entity, v=value), _RESTATED.format(e=entity, v=value)][:copies]
        texts = self.fillers(units - copies)
        for text in facts:
            texts.insert(self.rng.randrange(len(texts) + 1), text)
        gold = tuple(f"s{i}" for i, t in enumerate(texts) if t in facts)
        case = Case.from_dict({
            "id": f"{'single' if copies == 1 else 'redundant'}-{index:03d}", "system": SYSTEM,
            "query": question.format(e=entity),
            "sources": [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)],
            "metadata": {"gold": list(gold), "value": value}})
        return TrainingCase(case, "single" if copies == 1 else "redundant", "source", gold)

    def real(self, index: int, units: int, granularity: Granularity) -> TrainingCase:
        row = self.questions[index % len(self.questions)]
        gold = next(d for d in self.corpus if d["id"] == row["gold_document"])
        others = self.rng.sample([d for d in self.corpus if d["id"] != gold["id"]], units - 1)
        docs = others[:]
        docs.insert(self.rng.randrange(units), gold)
        case = Case.from_dict({
            "id": f"real-{index:03d}-{granularity}", "system": SYSTEM, "query": row["query"],
            "sources": [{"id": d["id"], "title": d.get("title"), "text": d["text"]} for d in docs],
            "metadata": {"gold_document": gold["id"]}})
        return TrainingCase(case, "real", granularity, ())

    def tools(self, index: int) -> TrainingCase:
        city = self.word()
        picked = self.rng.sample(_TOOLS, 2)
        asked = picked[index % 2]
        calls = [{"id": f"call_{i}", "name": name, "arguments": {"city": city},
                  "output": out.format(v=self.rng.randint(3, 90000))}
                 for i, (name, _q, out) in enumerate(picked)]
        case = Case.from_dict({
            "id": f"tools-{index:03d}", "system": TOOL_SYSTEM, "query": asked[1].format(c=city),
            "sources": [{"id": "s0", "text": self.fillers(1)[0]}], "tool_calls": calls})
        return TrainingCase(case, "tools", "source", (f"call_{index % 2}",))


def training_cases(n: int, seed: int, real_split: Literal["train", "held_out"] = "train",
                   max_units: int = 8) -> list[TrainingCase]:
    """n cases, mixed: 4 in 10 single planted facts, 1 redundant, 3 real text (source and
    sentence units), 2 tool traces; 4 to `max_units` units each."""
    maker = CaseMaker(seed, real_split)
    cases: list[TrainingCase] = []
    pattern = ("single", "real", "single", "tools", "real", "single", "redundant", "real",
               "single", "tools")
    for i in range(n):
        kind = pattern[i % len(pattern)]
        units = maker.rng.randint(4, max_units)
        if kind == "single":
            cases.append(maker.planted(i, units))
        elif kind == "redundant":
            cases.append(maker.planted(i, units, copies=2))
        elif kind == "real":
            cases.append(maker.real(i, min(units, 5), "sentence" if i % 2 else "source"))
        else:
            cases.append(maker.tools(i))
    return cases
