"""What an audit runs and within which budget: `AuditConfig`, and the verdict `Thresholds`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relyscope.case import Granularity, field_path
from relyscope.errors import CaseError


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


MethodName = Literal["attention", "loo", "ablation", "tools", "tracing"]
ALL_METHODS: tuple[MethodName, ...] = ("attention", "loo", "ablation", "tools", "tracing")
RELIANCE_METHODS: tuple[MethodName, ...] = ("loo", "ablation", "tools", "tracing")


class Thresholds(_Model):
    """Verdict thresholds (nats of answer log-prob, or attention shares); written into reports."""

    relied_drop: float = Field(default=2.0, description="LOO drop (nats) above which relied")
    attended_ratio: float = Field(default=1.0,
                                  description="a unit counts as consulted when its share of the "
                                              "answer's attention to units is at least this "
                                              "times the uniform share 1/n")
    parametric_logprob_per_token: float = Field(
        default=-1.0, description="mean answer log-prob per token above which the model is "
                                  "confident")
    redundancy_ratio: float = Field(default=3.0, description="joint drop / max single drop "
                                                             "above which sources are redundant")
    ablation_relative: float = Field(default=0.25,
                                     description="an ablation weight votes for relied only when "
                                                 "at least this share of the largest weight")
    unstable_spearman: float = Field(default=0.5, description="rank correlation under "
                                                              "perturbation below which unstable")


class AuditConfig(_Model):
    """What an audit runs and within which budget. Every field lands in the report."""

    methods: tuple[MethodName, ...] = ("attention", "loo", "ablation", "tools", "tracing")
    granularity: Granularity = "source"
    tool_mode: Literal["native", "inline", "tool_role"] | None = None
    removal: Literal["remove", "placeholder"] = "remove"
    ablations: int = Field(default=64, ge=4, le=4096)
    ablation_keep_prob: float = Field(default=0.5, gt=0.0, lt=1.0)
    ablation_alpha: float = Field(default=0.01, gt=0.0)
    lds_masks: int = Field(default=0, ge=0, le=1024)  # 0: cross-validated LDS
    tracing_samples: int = Field(default=3, ge=1, le=100)
    tracing_noise_scale: float = Field(default=3.0, gt=0.0)
    tracing_window: int = Field(default=5, ge=1)
    tracing_top_units: int = Field(default=2, ge=0)
    tracing_in_distribution: bool = True
    regenerate: bool = False
    stability: bool = False
    seed: int = 0
    max_forward_passes: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [m.strip() for m in value.split(",") if m.strip()]
        return value

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            raise CaseError(field_path(first["loc"]),
                            first["msg"].removeprefix("Value error, ")) from None
