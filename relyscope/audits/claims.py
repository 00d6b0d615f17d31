"""Per-claim attribution: each claim of the answer judged alone, from the same forward passes.

A claim is a [start, end) character span of the answer: its sentences (`claims: "auto"`) or
spans the caller names (the case's `claims`, or the config's, which win). Every scored variant
keeps its per-token log-probs, so a claim's scores are the whole-answer methods' own scores
restricted to the claim's answer tokens, through each method's `claim_scores` hook:
leave-one-out drops of the claim's tokens, an ablation surrogate fit on the same masks with
the claim's tokens as target, attention rows of the claim's tokens. Nothing here runs the
model; the runner records the passes spent here (zero) in the report's cost.

Per claim the voting methods' scores are combined per unit as for unit verdicts; units whose
combined reliance passes `relied_drop` are its citations. A claim is `supported` when it has
citations or when removing every unit moves it (the sources are redundant); otherwise
`unsupported`, read as `parametric` when the model is confident of the claim's tokens and as
a `likely-hallucination` when it is not. The audit verdicts (grounded, parametric,
redundant-sources) are also given on the claim's tokens, so a claim on a value's span is
judged on the value rather than on the wording around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from relyscope.audits.base import ANSWER, AuditContext, MethodResult
from relyscope.audits.method import AuditMethod
from relyscope.audits.verdicts import RELATIVE_VOTE, audit_verdicts, unit_reliance
from relyscope.case import Case, check_claim_spans, split_sentences
from relyscope.config import AuditConfig
from relyscope.errors import CaseError
from relyscope.report_model import ClaimReport

Span = tuple[int, int]
TOP_UNITS = 3


def resolve_claims(case: Case, config: AuditConfig) -> tuple[list[Span], str | None]:
    """The claims' character spans and where they came from ("config", "case", "auto"; None
    when no claims were asked for). Spans past the answer are a CaseError naming `claims[i]`."""
    answer = case.answer or ""
    if isinstance(config.claims, tuple):
        spans, origin = list(config.claims), "config"
    elif isinstance(case.claims, tuple):
        spans, origin = list(case.claims), "case"
    elif "auto" in (config.claims, case.claims):
        spans, origin = sentence_spans(answer), "auto"
    else:
        return [], None
    check_claim_spans(tuple(spans), "claims", len(answer))
    return spans, origin


def sentence_spans(text: str) -> list[Span]:
    """The [start, end) character span of each sentence, surrounding whitespace left out."""
    spans: list[Span] = []
    for sentence, start in split_sentences(text):
        stripped = sentence.strip()
        if stripped:
            begin = start + sentence.index(stripped)
            spans.append((begin, begin + len(stripped)))
    return spans


def token_spans(ctx: AuditContext, char_spans: Sequence[Span]) -> list[Span]:
    """Answer-token span of each character span: the tokens overlapping it."""
    answer = ctx.full.target
    encoded = ctx.lm.tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    if tuple(encoded["input_ids"]) != tuple(ctx.full.target_ids):
        raise CaseError("claims", "the tokenizer's offsets do not match the answer's tokens")
    offsets = encoded["offset_mapping"]
    spans: list[Span] = []
    for i, (start, end) in enumerate(char_spans):
        inside = [t for t, (a, b) in enumerate(offsets) if a < end and b > start]
        if not inside:
            raise CaseError(f"claims[{i}]", f"[{start}, {end}] covers no token of the answer")
        spans.append((inside[0], inside[-1] + 1))
    return spans


def claim_reports(ctx: AuditContext, methods: dict[str, AuditMethod],
                  results: dict[str, MethodResult], char_spans: Sequence[Span]
                  ) -> list[ClaimReport]:
    """One ClaimReport per claim, from the variants already scored (no forward pass)."""
    full = ctx.full_score()
    joint = ctx.cached([(ctx.removal(ctx.unit_ids), ANSWER)])
    joint_score = next(iter(joint.values()), None)
    answer = ctx.full.target
    reports: list[ClaimReport] = []
    for index, (chars, tokens) in enumerate(zip(char_spans, token_spans(ctx, char_spans),
                                                strict=True)):
        start, end = tokens
        logprob = full.tokens(start, end).total
        joint_drop = (None if joint_score is None
                      else logprob - joint_score.tokens(start, end).total)
        scores: dict[str, dict[str, float | None]] = {}
        extras: dict[str, dict[str, object]] = {}
        for name, method in methods.items():
            if name not in results:
                continue
            outcome = method.claim_scores(ctx, results[name], tokens)
            if outcome is None:
                continue
            scores[name] = outcome.scores
            if outcome.extras:
                extras[name] = outcome.extras
        reports.append(_judge(ctx, index, answer[chars[0]:chars[1]], chars, tokens, logprob,
                              joint_drop, scores, extras))
    return reports


def _judge(ctx: AuditContext, index: int, text: str, chars: Span, tokens: Span, logprob: float,
           joint_drop: float | None, scores: dict[str, dict[str, float | None]],
           extras: dict[str, dict[str, object]]) -> ClaimReport:
    thresholds = ctx.config.thresholds
    relative = scores.get(RELATIVE_VOTE, {})
    scale = max((abs(v) for v in relative.values() if v is not None), default=0.0)
    reliance = {uid: unit_reliance({m: s.get(uid) for m, s in scores.items()}, scale, thresholds)
                for uid in ctx.unit_ids}
    ranked = sorted((uid for uid in ctx.unit_ids if reliance[uid] is not None),
                    key=lambda uid: -(reliance[uid] or 0.0))
    citations = [uid for uid in ranked if (reliance[uid] or 0.0) >= thresholds.relied_drop]
    per_token = logprob / (tokens[1] - tokens[0])
    loo = [v for v in scores.get("loo", {}).values() if v is not None]
    verdicts = audit_verdicts(logprob_per_token=per_token, joint_drop=joint_drop,
                              max_single_drop=max(loo) if loo else None, stability=None,
                              thresholds=thresholds)
    supported = bool(citations) or "grounded" in verdicts
    reading = None
    if not supported:
        confident = per_token >= thresholds.parametric_logprob_per_token
        reading = "parametric" if confident else "likely-hallucination"
    return ClaimReport(index=index, text=text, char_span=chars, token_span=tokens,
                       logprob=logprob, logprob_per_token=per_token, joint_drop=joint_drop,
                       scores=scores, reliance=reliance, top_units=ranked[:TOP_UNITS],
                       citations=citations, verdict="supported" if supported else "unsupported",
                       reading=reading, verdicts=verdicts, extras=extras)
