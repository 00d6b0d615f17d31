"""Planted-ground-truth cases from templates with invented entities.

Kinds (the first six are controls and the old headline; the rest are where methods can
disagree, see bench/quality.py):
- ``single``: one source states the fact; the others are unrelated fillers.
- ``entity``: the fillers repeat the question's entity (to draw attention) but say nothing
  about the asked attribute.
- ``redundant``: two sources state the fact in different words.
- ``conflicting``: two sources give different values; the gold unit is the one whose value
  the model's greedy answer repeats (fixed at certification).
- ``parametric``: a question the model answers from its weights; sources are unrelated.
- ``tools``: two tool calls (and one filler source); one output decides the answer.
- ``joint``: two units are needed together: a two-part question (who, and in which year)
  whose parts are stated by two different units; the answer must carry both values.
- ``decoy``: beside the fact, a long unit that repeats the question's words and entity
  (drawing attention) without the asked attribute.
- ``tool_chain``: a lookup call whose output (a station code) is the argument of the later
  call whose output answers; the answer relies on the later call, the later call on the first.
- ``partial``: beside the fact, a unit with a detail about the same entity that the answer
  may fold into its wording (certified only when it does) without changing the value.

Every case carries its ground truth and a paraphrased question in ``metadata``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relyscope.case import Case

SYSTEM = "Answer the question in one sentence using the context."
TOOL_SYSTEM = "Answer the question in one sentence using the context and tool results."
KINDS = ("single", "entity", "redundant", "conflicting", "parametric", "tools", "joint",
         "decoy", "tool_chain", "partial")
# the kinds where methods can disagree: the quality benchmark's headline
DISAGREEMENT_KINDS = ("redundant", "joint", "conflicting", "decoy", "tool_chain", "partial")

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "qu", "r", "s",
           "t", "th", "v", "z", "zh", "c", "h"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ou", "ei"]
_CODAS = ["", "n", "r", "l", "th", "k", "m", "s", "rn", "lk", "x", "nd"]
_FIRST = ["Anna", "Tomas", "Ilse", "Marek", "Sofia", "Oren", "Lidia", "Pavel", "Nora", "Emil",
          "Greta", "Hugo", "Vera", "Felix", "Ada", "Boris", "Clara", "Dmitri", "Elena", "Janek"]
_COLOURS = ["green", "purple", "orange", "yellow", "crimson", "teal", "violet", "amber"]


def invented_word(rng: random.Random, syllables: int = 2) -> str:
    """A pronounceable made-up name, e.g. 'Zelkor'."""
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables - 1))
    word += rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
    return word.capitalize()


@dataclass(frozen=True)
class FactTemplate:
    """One attribute of one kind of invented entity."""

    name: str
    phrase: str  # how the entity is named in text, with {e}
    question: str
    paraphrase: str
    fact: str  # states the value: {phrase} and {v}
    restated: str  # the same fact in other words, for redundant copies
    rival: str  # a conflicting claim, for conflicting sources
    value: str  # 'person', 'city', 'number:LO:HI', 'colour'


FACTS: tuple[FactTemplate, ...] = (
    FactTemplate("founder", "the {e} guild", "Who founded the {e} guild?",
                 "Which person established the {e} guild?",
                 "The {e} guild was founded by {v}.",
                 "Records show that {v} started the {e} guild.",
                 "An old pamphlet claims the {e} guild was founded by {v}.", "person"),
    FactTemplate("capital", "{e}", "What is the capital of {e}?",
                 "Which city is the capital of {e}?",
                 "The capital of {e} is {v}.",
                 "{v} serves as the capital city of {e}.",
                 "Some maps list {v} as the capital of {e}.", "city"),
    FactTemplate("height", "the {e} tower", "How tall is the {e} tower?",
                 "What is the height of the {e} tower?",
                 "The {e} tower is {v} metres tall.",
                 "Surveyors measured the {e} tower at {v} metres in height.",
                 "A tourist leaflet says the {e} tower is {v} metres tall.", "number:120:980"),
    FactTemplate("opened", "the {e} bridge", "In which year did the {e} bridge open?",
                 "When was the {e} bridge opened?",
                 "The {e} bridge opened in {v}.",
                 "Traffic first crossed the {e} bridge in {v}.",
                 "One history book dates the opening of the {e} bridge to {v}.",
                 "number:1710:1990"),
    FactTemplate("composer", "the opera {e}", "Who composed the opera {e}?",
                 "Which composer wrote the opera {e}?",
                 "The opera {e} was composed by {v}.",
                 "{v} wrote the music of the opera {e}.",
                 "A concert programme credits {v} as the composer of the opera {e}.", "person"),
    FactTemplate("length", "the {e} river", "How long is the {e} river?",
                 "What is the length of the {e} river?",
                 "The {e} river is {v} kilometres long.",
                 "From source to sea the {e} river runs {v} kilometres.",
                 "An atlas gives the length of the {e} river as {v} kilometres.",
                 "number:140:2900"),
    FactTemplate("ceo", "{e} Systems", "Who is the chief executive of {e} Systems?",
                 "Who leads {e} Systems as chief executive?",
                 "The chief executive of {e} Systems is {v}.",
                 "{v} runs {e} Systems as its chief executive.",
                 "A trade magazine named {v} as the chief executive of {e} Systems.", "person"),
    FactTemplate("captain", "the ship {e}", "Who is the captain of the ship {e}?",
                 "Who commands the ship {e}?",
                 "The captain of the ship {e} is {v}.",
                 "The ship {e} sails under the command of {v}.",
                 "A harbour notice lists {v} as captain of the ship {e}.", "person"),
    FactTemplate("flag", "{e}", "What colour is the flag of {e}?",
                 "Which colour is the flag of {e}?",
                 "The flag of {e} is {v}.",
                 "{e} flies a plain {v} flag.",
                 "A souvenir shop sells flags of {e} coloured {v}.", "colour"),
    FactTemplate("mayor", "the town of {e}", "Who is the mayor of the town of {e}?",
                 "Who serves as mayor of the town of {e}?",
                 "The mayor of the town of {e} is {v}.",
                 "Residents of the town of {e} elected {v} as their mayor.",
                 "A local paper reported that {v} is mayor of the town of {e}.", "person"),
)

FILLERS: tuple[str, ...] = (
    "The {x} river floods every spring, covering the valley farms with silt.",
    "Copper prices rose sharply in the markets of {x} last year.",
    "Lighthouses on the {x} coast use rotating lenses to guide ships at night.",
    "The {x} festival celebrates the first snowfall with paper lanterns.",
    "Bakers in {x} sell a dark rye bread flavoured with caraway seeds.",
    "The {x} railway climbs through pine forests on a narrow gauge track.",
    "Farmers near {x} grow barley and keep small herds of goats.",
    "The {x} museum displays old clocks, maps and carved wooden toys.",
    "Storms from the {x} sea often close the ferry routes in winter.",
    "The {x} choir rehearses twice a week in a converted warehouse.",
    "A small observatory on {x} hill is open to visitors on clear nights.",
    "The {x} library lends books, records and sewing machines.",
)

# joint evidence: a two-part question; one unit says who, another says when
JOINT: tuple[tuple[str, str, str, str], ...] = (
    ("Who founded the {e} guild, and in which year?",
     "Which person established the {e} guild, and when?",
     "The {e} guild was founded by {v}.", "The {e} guild was founded in {y}."),
    ("Who composed the opera {e}, and in which year?",
     "Which composer wrote the opera {e}, and when?",
     "The opera {e} was composed by {v}.", "The opera {e} was written in {y}."),
    ("Who built the {e} bridge, and in which year?",
     "Which engineer built the {e} bridge, and when?",
     "The {e} bridge was built by {v}.", "The {e} bridge was completed in {y}."),
    ("Who painted the {e} portrait, and in which year?",
     "Which artist painted the {e} portrait, and when?",
     "The {e} portrait was painted by {v}.", "The {e} portrait was finished in {y}."),
)

DECOYS: tuple[str, ...] = (
    "Visitors often ask about {p}. Guides talk about {p} for hours, and {p} appears in many "
    "songs, postcards and old photographs, but the tour of {p} ends at the gift shop.",
    "{P} is a popular topic. Books about {p}, films about {p} and a museum room about {p} "
    "all describe the long history of {p} and its place in local legends.",
    "People who study {p} say that {p} is often misunderstood. Essays on {p} compare {p} "
    "with its neighbours and ask questions about {p} that no one has answered.",
)

DETAILS: tuple[str, ...] = (
    "{P} dates from the {n}th century.",
    "{P} is painted {c} every spring.",
    "{P} is a landmark of the {w} region.",
)

ENTITY_DISTRACTORS: tuple[str, ...] = (
    "Many stories have been written about {p}.",
    "Visitors often ask guides about {p}.",
    "{P} appeared in a travel documentary last winter.",
    "A painting of {p} hangs in a gallery by the harbour.",
    "Schoolchildren learn a short song about {p}.",
)

# Questions the model answers from its weights (certification keeps only those it knows).
PARAMETRIC: tuple[tuple[str, str, str], ...] = (
    ("What is the capital of France?", "Which city is the capital of France?", "Paris"),
    ("What is the capital of Italy?", "Which city is the capital of Italy?", "Rome"),
    ("What is the capital of Japan?", "Which city is the capital of Japan?", "Tokyo"),
    ("What is the capital of Germany?", "Which city is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Which city is the capital of Spain?", "Madrid"),
    ("What is the capital of England?", "Which city is the capital of England?", "London"),
    ("What is the capital of Egypt?", "Which city is the capital of Egypt?", "Cairo"),
    ("What is the capital of Russia?", "Which city is the capital of Russia?", "Moscow"),
)


@dataclass(frozen=True)
class ToolTemplate:
    name: str
    question: str
    paraphrase: str
    output: str  # with {v}
    value: str


TOOLS: tuple[ToolTemplate, ...] = (
    ToolTemplate("get_temperature", "What is the temperature in {c} right now?",
                 "How warm is it in {c} at the moment?", "{v} degrees Celsius", "number:-5:35"),
    ToolTemplate("get_population", "How many people live in {c}?",
                 "What is the population of {c}?", "{v} people", "number:2000:90000"),
    ToolTemplate("get_local_time", "What time is it in {c} now?",
                 "What is the current local time in {c}?", "{v}", "clock"),
    ToolTemplate("get_wind_speed", "How fast is the wind blowing in {c}?",
                 "What is the wind speed in {c}?", "{v} kilometres per hour", "number:3:80"),
)


class CaseFactory:
    """Seeded generator of planted-ground-truth cases."""

    def __init__(self, seed: int = 0, units: int = 5) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.units = units
        self._used: set[str] = set()

    def word(self) -> str:
        while True:
            word = invented_word(self.rng, self.rng.choice([2, 2, 3]))
            if word not in self._used and 4 <= len(word) <= 10:
                self._used.add(word)
                return word

    def value(self, kind: str) -> str:
        if kind == "person":
            return f"{self.rng.choice(_FIRST)} {self.word()}"
        if kind == "city":
            return self.word()
        if kind == "colour":
            return self.rng.choice(_COLOURS)
        if kind == "clock":
            return f"{self.rng.randint(1, 12)}:{self.rng.choice(['05', '20', '35', '50'])} pm"
        _, lo, hi = kind.split(":")
        return str(self.rng.randint(int(lo), int(hi)))

    def fillers(self, n: int) -> list[str]:
        """n unrelated sentences; templates repeat (with new names) past the pool's size."""
        picks = []
        while len(picks) < n:
            picks += self.rng.sample(FILLERS, min(len(FILLERS), n - len(picks)))
        return [t.format(x=self.word()) for t in picks]

    # -- kinds --------------------------------------------------------------------------------

    def make(self, kind: str, index: int) -> Case:
        """Case `index` of `kind`: a function of (seed, kind, index) alone, so two runs that
        draw kinds in different orders (say, a subset run) audit the same cases."""
        self.rng = random.Random(f"{self.seed}:{kind}:{index}")
        self._used = set()
        return getattr(self, f"_{kind}")(f"{kind}-{index:02d}", index)

    def _fact_case(self, case_id: str, index: int, kind: str) -> Case:
        template = FACTS[index % len(FACTS)]
        entity = self.word()
        phrase = template.phrase.format(e=entity)
        value = self.value(template.value)
        fact = template.fact.format(e=entity, v=value)
        n_other = self.units - 1
        if kind == "entity":
            picks = self.rng.sample(ENTITY_DISTRACTORS, n_other)
            others = [t.format(p=phrase, P=phrase[0].upper() + phrase[1:]) for t in picks]
        else:
            others = self.fillers(n_other)
        gold = index % self.units
        texts = others[:gold] + [fact] + others[gold:]
        return _case(case_id, SYSTEM, template.question.format(e=entity), texts,
                     {"kind": kind, "gold": [f"s{gold}"], "value": value,
                      "paraphrase": template.paraphrase.format(e=entity),
                      "template": template.name})

    def _single(self, case_id: str, index: int) -> Case:
        return self._fact_case(case_id, index, "single")

    def _entity(self, case_id: str, index: int) -> Case:
        return self._fact_case(case_id, index, "entity")

    def _redundant(self, case_id: str, index: int) -> Case:
        template = FACTS[index % len(FACTS)]
        entity, value = self.word(), self.value(template.value)
        copies = [template.fact.format(e=entity, v=value),
                  template.restated.format(e=entity, v=value)]
        texts = _place(self.fillers(self.units - 2), copies, self.rng)
        gold = [f"s{i}" for i, t in enumerate(texts) if t in copies]
        return _case(case_id, SYSTEM, template.question.format(e=entity), texts,
                     {"kind": "redundant", "gold": gold, "value": value,
                      "paraphrase": template.paraphrase.format(e=entity),
                      "template": template.name})

    def _conflicting(self, case_id: str, index: int) -> Case:
        template = FACTS[index % len(FACTS)]
        entity = self.word()
        value = self.value(template.value)
        rival = value
        while rival == value:
            rival = self.value(template.value)
        claims = [template.fact.format(e=entity, v=value),
                  template.rival.format(e=entity, v=rival)]
        if index % 2:
            claims.reverse()
        texts = _place(self.fillers(self.units - 2), claims, self.rng)
        ids = {t: f"s{i}" for i, t in enumerate(texts)}
        return _case(case_id, SYSTEM, template.question.format(e=entity), texts,
                     {"kind": "conflicting", "gold": [],  # fixed by certification
                      "candidates": {value: ids[claims[index % 2]],
                                     rival: ids[claims[1 - index % 2]]},
                      "paraphrase": template.paraphrase.format(e=entity),
                      "template": template.name})

    def _parametric(self, case_id: str, index: int) -> Case:
        question, paraphrase, value = PARAMETRIC[index % len(PARAMETRIC)]
        return _case(case_id, SYSTEM, question, self.fillers(self.units),
                     {"kind": "parametric", "gold": [], "value": value,
                      "paraphrase": paraphrase, "template": "parametric"})

    def _tools(self, case_id: str, index: int) -> Case:
        city = self.word()
        asked = TOOLS[index % len(TOOLS)]
        chosen = [asked] + self.rng.sample([t for t in TOOLS if t is not asked], 1)
        self.rng.shuffle(chosen)
        calls = []
        value = ""
        for i, tool in enumerate(chosen):
            v = self.value(tool.value)
            if tool is asked:
                value = v
            calls.append({"id": f"call_{i}", "name": tool.name,
                          "arguments": {"city": city}, "output": tool.output.format(v=v)})
        gold = next(c["id"] for c, t in zip(calls, chosen, strict=True) if t is asked)
        data = {"id": case_id, "system": TOOL_SYSTEM, "query": asked.question.format(c=city),
                "sources": [{"id": "s0", "text": self.fillers(1)[0]}], "tool_calls": calls,
                "metadata": {"kind": "tools", "gold": [gold], "value": value,
                             "paraphrase": asked.paraphrase.format(c=city),
                             "template": asked.name}}
        return Case.from_dict(data)


    # -- the kinds where methods can disagree -----------------------------------------------

    def _joint(self, case_id: str, index: int) -> Case:
        question, paraphrase, who, when = JOINT[index % len(JOINT)]
        entity, person, year = self.word(), self.value("person"), self.value("number:1710:1990")
        pair = [who.format(e=entity, v=person), when.format(e=entity, y=year)]
        texts = _place(self.fillers(self.units - 2), pair, self.rng)
        gold = [f"s{texts.index(t)}" for t in pair]
        return _case(case_id, SYSTEM, question.format(e=entity), texts,
                     {"kind": "joint", "gold": gold, "value": person, "values": [person, year],
                      "paraphrase": paraphrase.format(e=entity), "template": "joint"})

    def _with_extra(self, case_id: str, index: int, kind: str, extra_of) -> Case:
        template = FACTS[index % len(FACTS)]
        entity, value = self.word(), self.value(template.value)
        phrase = template.phrase.format(e=entity)
        fact = template.fact.format(e=entity, v=value)
        extra = extra_of(phrase, phrase[0].upper() + phrase[1:])
        texts = _place(self.fillers(self.units - 2), [fact, extra], self.rng)
        if self.rng.random() < 0.5:  # the extra unit before or after the fact, at random
            i, j = texts.index(fact), texts.index(extra)
            texts[i], texts[j] = extra, fact
        return _case(case_id, SYSTEM, template.question.format(e=entity), texts,
                     {"kind": kind, "gold": [f"s{texts.index(fact)}"], "value": value,
                      "distractor": f"s{texts.index(extra)}",
                      "paraphrase": template.paraphrase.format(e=entity),
                      "template": template.name})

    def _decoy(self, case_id: str, index: int) -> Case:
        decoy = self.rng.choice(DECOYS)
        return self._with_extra(case_id, index, "decoy",
                                lambda p, cap: decoy.format(p=p, P=cap))

    def _partial(self, case_id: str, index: int) -> Case:
        detail = self.rng.choice(DETAILS)
        n, colour, word = self.rng.randint(11, 19), self.rng.choice(_COLOURS), self.word()
        return self._with_extra(case_id, index, "partial",
                                lambda p, cap: detail.format(p=p, P=cap, n=n, c=colour, w=word))

    def _tool_chain(self, case_id: str, index: int) -> Case:
        city = self.word()
        asked = TOOLS[index % len(TOOLS)]
        code = f"{city[:2].upper()}-{self.rng.randint(10, 99)}"
        value = self.value(asked.value)
        while len(value.lstrip("-")) < 2 or value in code:  # a value the answer cannot hit
            value = self.value(asked.value)              # by chance (a lone digit, the code)
        calls = [{"id": "call_0", "name": "find_station", "arguments": {"city": city},
                  "output": f"station {code}"},
                 {"id": "call_1", "name": asked.name, "arguments": {"station": code},
                  "output": asked.output.format(v=value)}]
        data = {"id": case_id, "system": TOOL_SYSTEM, "query": asked.question.format(c=city),
                "sources": [{"id": "s0", "text": self.fillers(1)[0]}], "tool_calls": calls,
                "metadata": {"kind": "tool_chain", "gold": ["call_1"], "value": value,
                             "upstream": "call_0", "paraphrase": asked.paraphrase.format(c=city),
                             "template": asked.name}}
        return Case.from_dict(data)


def _place(texts: list[str], extra: list[str], rng: random.Random) -> list[str]:
    """Insert `extra` (in order) at random distinct positions among `texts`."""
    slots = sorted(rng.sample(range(len(texts) + len(extra)), len(extra)))
    out, rest = [], iter(texts)
    pending = iter(extra)
    for i in range(len(texts) + len(extra)):
        out.append(next(pending) if i in slots else next(rest))
    return out


def _case(case_id: str, system: str, query: str, texts: list[str], meta: dict) -> Case:
    return Case.from_dict({"id": case_id, "system": system, "query": query,
                           "sources": [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)],
                           "metadata": meta})


def generate(counts: dict[str, int], *, seed: int = 0, units: int = 5) -> list[Case]:
    """Candidate cases, `counts[kind]` of each kind, deterministic for a seed."""
    factory = CaseFactory(seed, units)
    return [factory.make(kind, i) for kind in KINDS for i in range(counts.get(kind, 0))]
