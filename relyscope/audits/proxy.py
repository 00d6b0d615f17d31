"""Audits by proxy: the answer was written by another model than the one auditing it.

Production logs hold answers from API models or larger models served elsewhere; relyscope
scores them with its local model. When the case names the answering model (`Case.model`, filled
by the log readers) and it is not the audit model, the report carries a `proxy` block: both
models, the proxy's fit to the answer (mean teacher-forced log-prob per answer token) and
whether the proxy's own greedy answer agrees on the answer's key content (its names and
numbers, else its longer words). A fit below the config's thresholds is a warning: the
reliance scores describe how the proxy would use the sources for that answer, and a proxy
that would not write it is a poor witness.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from relyscope.audits.base import ANSWER, AuditContext
from relyscope.config import Thresholds
from relyscope.models import Variant

_WORD = re.compile(r"[^\W_]+(?:[.,'][^\W_]+)*")
_STOP_WORDS = """a an and are as at be by for from has have in is it its of on or that the
this to was were which who with what when where how why i you he she they we there their it's
not no yes"""
_STOP = frozenset(_STOP_WORDS.split())
_LONG_WORD = 4


def model_key(name: str) -> str:
    """A model name compared loosely: lower case, last path part, no file suffix
    ("HuggingFaceTB/SmolLM2-135M-Instruct" and "smollm2-135m-instruct" are one model)."""
    last = PurePosixPath(name.strip().replace("\\", "/")).name.lower()
    return re.sub(r"\.(gguf|safetensors|bin)$", "", last)


def is_proxy(answering_model: str | None, audit_model_names: tuple[str, ...]) -> bool:
    """Whether the answer came from a model other than the audit model."""
    if not answering_model or not answering_model.strip():
        return False
    return model_key(answering_model) not in {model_key(n) for n in audit_model_names if n}


def key_terms(text: str) -> list[str]:
    """The answer's key content: names (capitalised words that are not stop words) and
    numbers; when it has none, its words of at least four letters that are not stop words."""
    words = _WORD.findall(text)
    named = [w for w in words if (w[0].isupper() or any(c.isdigit() for c in w))
             and w.lower() not in _STOP]
    chosen = named or [w for w in words if len(w) >= _LONG_WORD and w.lower() not in _STOP]
    return list(dict.fromkeys(w.lower() for w in chosen))


def agreement(answer: str, other: str) -> tuple[float | None, list[str], list[str]]:
    """Share of the answer's key terms found in `other`, the terms, and those found."""
    terms = key_terms(answer)
    if not terms:
        return None, [], []
    found_words = {w.lower() for w in _WORD.findall(other)}
    matched = [t for t in terms if t in found_words]
    return len(matched) / len(terms), terms, matched


def proxy_block(ctx: AuditContext, answer_logprob: float) -> dict[str, Any] | None:
    """The report's `proxy` block, or None when the audit model wrote the answer (or the case
    does not say who did). Runs one greedy generation when the budget allows it."""
    info = ctx.lm.info
    if not is_proxy(ctx.case.model, (info.id, PurePosixPath(info.path).name)):
        return None
    thresholds = ctx.config.thresholds
    tokens = len(ctx.full.target_ids)
    per_token = answer_logprob / tokens
    block: dict[str, Any] = {
        "answering_model": ctx.case.model, "audit_model": info.id,
        "logprob_per_token": per_token, "answer_tokens": tokens,
        "min_logprob_per_token": thresholds.proxy_logprob_per_token,
        "min_agreement": thresholds.proxy_agreement,
        "proxy_answer": None, "key_terms": key_terms(ctx.case.answer or ""),
        "key_terms_matched": None, "agreement": None, "agrees": None}
    if ctx.budget.check(1) is None:
        text = ctx.generate((Variant(), ANSWER), ctx.case.decoding.max_new_tokens)
        share, _, matched = agreement(ctx.case.answer or "", text)
        block.update(proxy_answer=text, key_terms_matched=matched, agreement=share,
                     agrees=None if share is None else share >= thresholds.proxy_agreement)
    block["fit"] = "low" if _low(block, thresholds) else "ok"
    return block


def _low(block: dict[str, Any], thresholds: Thresholds) -> bool:
    return (block["logprob_per_token"] < thresholds.proxy_logprob_per_token
            or block["agrees"] is False)


def proxy_warnings(block: dict[str, Any] | None) -> list[str]:
    """The report's warnings for a proxy audit: always that it is one; and a low fit."""
    if block is None:
        return []
    out = [f"audit by proxy: the answer was written by {block['answering_model']}, audited "
           f"with {block['audit_model']}"]
    if block["fit"] == "low":
        why = []
        if block["logprob_per_token"] < block["min_logprob_per_token"]:
            why.append(f"mean log-prob per answer token {block['logprob_per_token']:.2f} < "
                       f"{block['min_logprob_per_token']:.2f}")
        if block["agrees"] is False:
            why.append(f"its own greedy answer has {block['agreement']:.0%} of the answer's "
                       f"key terms (< {block['min_agreement']:.0%})")
        out.append("proxy fit too low for its reliance scores to be trusted: " + "; ".join(why))
    return out
