"""Certify planted ground truth by brute force against the real model.

A case is certified when (1) the greedy answer from the full case contains the planted value;
(2) removing the gold unit(s) together makes the value disappear from the greedy answer;
(3) removing any other single unit leaves it there; and (4) the answer repeats no invented
name of a non-gold unit (an answer that borrows a filler's content relies on that filler too).
For ``parametric`` cases there is no gold unit: removing every unit must leave the value there.

"Changes the greedy answer" is judged on the planted value, not the exact text: the stricter
exact-text rule (every non-gold removal leaves the answer word for word the same) would keep
about a quarter of the cases; whether each certified case also meets it is recorded
(``strict_unchanged``). For ``conflicting`` cases the gold unit is
the source whose value the full answer repeats (exactly one of the two must appear).

Kind-specific rules, each judged the same way by regeneration:
- ``redundant``: removing either copy alone keeps the value (each copy suffices);
- ``joint``: the answer carries every value in ``values`` (who and when); removing either of
  the two gold units alone loses one of them (both are needed);
- ``partial``: removing the detail unit changes the answer's text but keeps the value (it
  shapes the wording, not the value); its names may appear in the answer.

Every certificate carries `why`, a reason without unit ids, so drops can be counted per reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from relyscope.case import Case, split_sentences
from relyscope.models import CausalLM, Variant

MAX_NEW_TOKENS = 40


@dataclass
class Certificate:
    case_id: str
    kind: str
    certified: bool
    reason: str
    answer: str = ""
    gold: list[str] = field(default_factory=list)
    generations: int = 0
    strict_unchanged: bool | None = None  # exact answer kept under every non-gold removal
    why: str = ""  # the reason without unit ids (drops are counted by it)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def contains(answer: str, value: str) -> bool:
    def norm(text: str) -> str:
        return text.lower().replace(",", "").replace(" ", "")
    return norm(value) in norm(answer)


def borrowed_names(case: Case, answer: str, gold: list[str]) -> list[str]:
    """Capitalised names of non-gold units that the answer repeats (not in the question)."""
    names = set()
    for unit in case.units():
        if unit.id not in gold:
            names |= {w.strip(".,;:()\"'") for w in unit.text.split()[1:] if w[:1].isupper()}
    names -= {w.strip(".,;:?()\"'") for w in case.query.split()}
    return sorted(n for n in names if len(n) > 2 and n in answer)


def first_sentence(text: str) -> str:
    """The first line's first sentence: the audited answer is one sentence."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return split_sentences(lines[0])[0][0].strip() if lines else ""


def greedy(lm: CausalLM, case: Case, removed: list[str]) -> str:
    """The model's own greedy answer (one unpadded sequence, as `relyscope audit` makes it)."""
    return greedy_many(lm, case, [removed], MAX_NEW_TOKENS)[0]


@torch.inference_mode()
def greedy_many(lm: CausalLM, case: Case, removals: list[list[str]], max_new_tokens: int
                ) -> list[str]:
    """Greedy answers for several removal variants in one left-padded batch (one sequence:
    no padding). Generation stops at the first full stop or line end: only the first
    sentence is kept, so the tokens after it were wasted time."""
    renderer = lm.renderer(case)
    prompts = [renderer.render(Variant.without(r), target=" ").prompt_ids for r in removals]
    width = max(len(p) for p in prompts)
    pad = lm.scorer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    stop = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    out = lm.model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                            do_sample=False, pad_token_id=pad,
                            stop_strings=[".", "\n"], tokenizer=lm.tokenizer,
                            eos_token_id=[t for t in (lm.tokenizer.eos_token_id, stop)
                                          if isinstance(t, int)])
    lm.cost.forward_passes += len(prompts)
    texts = lm.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return [first_sentence(t) for t in texts]


def _drop(cert: Certificate, why: str, detail: str = "") -> tuple[None, Certificate]:
    cert.why, cert.reason = why, why + (f": {detail}" if detail else "")
    return None, cert


def certify(lm: CausalLM, case: Case) -> tuple[Case | None, Certificate]:
    """The case with its greedy answer and fixed gold units, or None when not certified."""
    meta = case.metadata
    kind = meta["kind"]
    cert = Certificate(case.id, kind, False, "")
    answer = greedy(lm, case, [])
    cert.answer = answer
    cert.generations = 1
    if kind == "conflicting":
        present = [v for v in meta["candidates"] if contains(answer, v)]
        if len(present) != 1:
            return _drop(cert, f"answer repeats {len(present)} of the two conflicting values")
        value, gold = present[0], [meta["candidates"][present[0]]]
    else:
        value, gold = meta["value"], list(meta["gold"])
    values = meta.get("values") or [value]

    def has(text: str) -> bool:
        return all(contains(text, v) for v in values)

    if not has(answer):
        return _drop(cert, "full-case answer lacks the planted value")
    allowed = gold + ([meta["distractor"]] if kind == "partial" else [])
    foreign = borrowed_names(case, answer, allowed)
    if foreign:
        return _drop(cert, "answer repeats names from non-gold units", ", ".join(foreign))
    unit_ids = [u.id for u in case.units()]
    others = unit_ids if kind == "parametric" else [u for u in unit_ids if u not in gold]
    # removal sets: the joint removal first, then each gold unit alone (where the kind says
    # what that must do), then each other unit alone
    singles = [[g] for g in gold] if kind in ("redundant", "joint") else []
    first = unit_ids if kind == "parametric" else gold
    removals = [first] + singles + [[u] for u in others]
    budget = len(lm.tokenizer(answer, add_special_tokens=False)["input_ids"]) + 8
    answers = greedy_many(lm, case, removals, budget)
    cert.generations += len(answers)
    joint, gold_alone, rest = answers[0], answers[1:1 + len(singles)], answers[1 + len(singles):]
    if has(joint) != (kind == "parametric"):
        return _drop(cert, "value lost without any context: not parametric"
                     if kind == "parametric" else "removing the gold unit(s) keeps the value")
    for (uid,), without in zip(singles, gold_alone, strict=True):
        if kind == "redundant" and not has(without):
            return _drop(cert, "removing one copy alone loses the value", uid)
        if kind == "joint" and has(without):
            return _drop(cert, "removing one of the joint units keeps the value", uid)
    for uid, without in zip(others, rest, strict=True):
        if not has(without):
            return _drop(cert, "removing a non-gold unit loses the value", uid)
    if kind == "partial" and rest[others.index(meta["distractor"])] == answer:
        return _drop(cert, "removing the detail unit leaves the answer's text unchanged")
    cert.strict_unchanged = all(a == answer for a in rest)
    cert.certified, cert.reason, cert.why, cert.gold = True, "ok", "ok", gold
    certified = case.model_copy(update={
        "answer": answer, "metadata": {**meta, "gold": gold, "value": value}})
    return certified, cert
