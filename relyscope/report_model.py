"""The canonical audit result: `Report`, with one `UnitReport` per unit. Other tools read its
JSON keys, so they stay stable."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from relyscope.case import UnitKind


class UnitReport(BaseModel):
    id: str
    kind: UnitKind
    parent: str | None = None
    provenance: dict[str, float | None] = Field(default_factory=dict)
    reliance: dict[str, float | None] = Field(default_factory=dict)
    verdict: str | None = None


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
