"""The canonical audit result: `Report`, with one `UnitReport` per unit. Other tools read its
JSON keys, so they stay stable."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from relyscope.case import UnitKind

#: Unit texts longer than this are kept as their first SNIPPET_CHARS characters and "…".
SNIPPET_CHARS = 400


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """`text`, or its first `limit` characters (cut at a space when one is near) and "…"."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit - 40, limit)
    return text[: cut if cut > 0 else limit].rstrip() + "…"


class UnitReport(BaseModel):
    """One unit: what it is (its text, or a snippet of it; where it sits in its parent
    source), what the answer attended to in it and relied on it for, and the verdict."""

    id: str
    kind: UnitKind
    parent: str | None = None
    provenance: dict[str, float | None] = Field(default_factory=dict)
    reliance: dict[str, float | None] = Field(default_factory=dict)
    verdict: str | None = None
    text: str | None = None                    # `snippet` of the unit's text
    char_span: tuple[int, int] | None = None   # [start, end) in the parent source (or itself)
    title: str | None = None                   # a source's title; a tool call's name(arguments)


class ClaimReport(BaseModel):
    """One claim of the answer (a sentence, or a span the caller named), attributed alone.

    JSON shape (`report.claims[i]`; the HTML claim view reads these keys):

        {"index": 0, "text": "Guido van Rossum created Python.",
         "char_span": [0, 32],            # [start, end) characters of `report.answer`
         "token_span": [0, 7],            # [start, end) tokens of the answer
         "logprob": -2.1, "logprob_per_token": -0.3,
         "joint_drop": 14.2,              # the claim's drop when every unit is removed
         "scores": {"loo": {"d0": 9.8, "d1": 0.1}, "ablation": {...}, "attention": {...}},
         "reliance": {"d0": 9.8, "d1": 0.1},   # the voting methods' combined vote per unit
         "top_units": ["d0", "d1", "d2"],      # up to 3, by `reliance`
         "citations": ["d0"],                  # units whose reliance passes relied_drop
         "verdict": "supported",               # or "unsupported"
         "reading": null,                      # unsupported: "parametric" (confident) or
                                               # "likely-hallucination"
         "verdicts": ["grounded"],             # the audit verdicts on this claim's tokens
         "extras": {"ablation": {"lds": 0.8}, "attention": {"attention_share": {...}}}}

    Scores are nats of the claim's tokens' log-probability (attention: mass), computed from
    the same forward passes as the whole-answer scores."""

    index: int
    text: str
    char_span: tuple[int, int]
    token_span: tuple[int, int]
    logprob: float
    logprob_per_token: float
    joint_drop: float | None = None
    scores: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    reliance: dict[str, float | None] = Field(default_factory=dict)
    top_units: list[str] = Field(default_factory=list)
    citations: list[str] = Field(default_factory=list)
    verdict: str | None = None
    reading: str | None = None
    verdicts: list[str] = Field(default_factory=list)
    extras: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Report(BaseModel):
    """The canonical audit result. Keys of this JSON are relied on by other tools."""

    case_id: str
    answer: str
    answer_logprob: float
    answer_tokens: int
    partial: bool = False
    units: list[UnitReport] = Field(default_factory=list)
    verdicts: list[str] = Field(default_factory=list)
    faithfulness: dict[str, dict[str, Any]] = Field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = Field(default_factory=dict)
    errors: dict[str, str] = Field(default_factory=dict)
    cost: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    claims: list[ClaimReport] = Field(default_factory=list)  # per-claim attribution, if asked
    # set when the answer came from another model than the audit model (relyscope.audits.proxy)
    proxy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls.model_validate(data)

    def unit(self, unit_id: str) -> UnitReport:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(unit_id)

    def ranking(self, method: str) -> list[str]:
        """Unit ids from most to least relied on (or attended) under `method`."""
        def value(u: UnitReport) -> float:
            score = u.reliance.get(method, u.provenance.get(method))
            return float("-inf") if score is None else score
        return [u.id for u in sorted(self.units, key=value, reverse=True)]
