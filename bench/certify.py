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
    prompt = lm.renderer(case).render(Variant.without(removed), target=" ").prompt_ids
    return first_sentence(lm.generate(prompt, max_new_tokens=MAX_NEW_TOKENS))


@torch.inference_mode()
def greedy_many(lm: CausalLM, case: Case, removals: list[list[str]], max_new_tokens: int
                ) -> list[str]:
    """Greedy answers for several removal variants in one left-padded batch."""
    renderer = lm.renderer(case)
    prompts = [renderer.render(Variant.without(r), target=" ").prompt_ids for r in removals]
    width = max(len(p) for p in prompts)
    pad = lm.scorer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    stop = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    out = lm.model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                            do_sample=False, pad_token_id=pad,
                            eos_token_id=[t for t in (lm.tokenizer.eos_token_id, stop)
                                          if isinstance(t, int)])
    lm.cost.forward_passes += len(prompts)
    texts = lm.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return [first_sentence(t) for t in texts]


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
            cert.reason = f"answer repeats {len(present)} of the two conflicting values"
            return None, cert
        value, gold = present[0], [meta["candidates"][present[0]]]
    else:
        value, gold = meta["value"], list(meta["gold"])
    if not contains(answer, value):
        cert.reason = "full-case answer lacks the planted value"
        return None, cert
    foreign = borrowed_names(case, answer, gold)
    if foreign:
        cert.reason = f"answer repeats names from non-gold units: {', '.join(foreign)}"
        return None, cert
    unit_ids = [u.id for u in case.units()]
    first = unit_ids if kind == "parametric" else gold  # removed jointly
    others = unit_ids if kind == "parametric" else [u for u in unit_ids if u not in gold]
    budget = len(lm.tokenizer(answer, add_special_tokens=False)["input_ids"]) + 8
    answers = greedy_many(lm, case, [first] + [[u] for u in others], budget)
    cert.generations += len(answers)
    if contains(answers[0], value) != (kind == "parametric"):
        cert.reason = ("value lost without any context: not parametric" if kind == "parametric"
                       else "removing the gold unit(s) keeps the value")
        return None, cert
    for uid, without in zip(others, answers[1:], strict=True):
        if not contains(without, value):
            cert.reason = f"removing non-gold unit {uid} loses the value"
            return None, cert
    cert.strict_unchanged = all(a == answer for a in answers[1:])
    cert.certified, cert.reason, cert.gold = True, "ok", gold
    certified = case.model_copy(update={
        "answer": answer, "metadata": {**meta, "gold": gold, "value": value}})
    return certified, cert
