"""What an audit runs and within which budget: `AuditConfig`, and the verdict `Thresholds`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relyscope.case import Claims, Granularity, case_error, parse_claims
from relyscope.errors import CaseError


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Deprecated flat settings, still accepted on input for one release: each moves into
# `method_settings[method][setting]`. Write `method_settings` instead.
LEGACY_SETTINGS: dict[str, tuple[str, str]] = {
    "ablations": ("ablation", "ablations"),
    "ablation_keep_prob": ("ablation", "keep_prob"),
    "ablation_alpha": ("ablation", "alpha"),
    "lds_masks": ("ablation", "lds_masks"),
    "tracing_samples": ("tracing", "samples"),
    "tracing_noise_scale": ("tracing", "noise_scale"),
    "tracing_window": ("tracing", "window"),
    "tracing_top_units": ("tracing", "top_units"),
    "tracing_in_distribution": ("tracing", "in_distribution"),
    "regenerate": ("loo", "regenerate"),
}


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
    proxy_logprob_per_token: float = Field(
        default=-2.0, description="an audit by proxy (the answer came from another model) warns "
                                  "when the audit model's mean log-prob per answer token is "
                                  "below this")
    proxy_agreement: float = Field(
        default=0.5, description="an audit by proxy warns when the audit model's own greedy "
                                 "answer holds less than this share of the answer's key terms")


FAST_METHODS = ("attention", "learned")


class AuditConfig(_Model):
    """What an audit runs and within which budget. Every field lands in the report.

    `methods` and `method_settings` are plain names here: the method registry
    (relyscope.audits.registry.validate_config, which every audit runs) checks them and
    validates each method's settings against its own `Settings` model. When `methods` is not
    given, the registry's default set runs (the tuple below is the built-in one)."""

    methods: tuple[str, ...] = ("attention", "loo", "ablation", "tools", "tracing")
    # per method name: its settings, e.g. {"ablation": {"ablations": 32}}; unset ones default
    method_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    granularity: Granularity = "source"
    tool_mode: Literal["native", "inline", "tool_role"] | None = None
    removal: Literal["remove", "placeholder"] = "remove"
    stability: bool = False
    seed: int = 0
    max_forward_passes: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # per-claim attribution: "auto" (the answer's sentences) or [start, end) character spans
    # of the answer; spans named here win over the case's own `claims`, "auto" does not
    claims: Claims | None = None
    # "fast": attention + the learned attributor (a reliance estimate) + its verification
    # masks, nothing else (FAST_METHODS), for sampling live traffic; "full": the audit above
    preset: Literal["full", "fast"] = "full"

    @model_validator(mode="before")
    @classmethod
    def _preset_methods(cls, data: Any) -> Any:
        """The fast preset names its own methods; with others named it is an error."""
        if not isinstance(data, dict) or data.get("preset") != "fast":
            return data
        given = data.get("methods")
        if isinstance(given, str):
            given = [m.strip() for m in given.split(",") if m.strip()]
        if given is not None and tuple(given) != FAST_METHODS:
            raise CaseError("preset", f"the fast preset runs {', '.join(FAST_METHODS)} and "
                                      "nothing else; do not name other methods with it")
        return {**data, "methods": FAST_METHODS}

    @field_validator("claims", mode="before")
    @classmethod
    def _claims_parsed(cls, value: Any) -> Any:
        return parse_claims(value, "claims")

    @model_validator(mode="before")
    @classmethod
    def _legacy_settings(cls, data: Any) -> Any:
        """Move the deprecated flat settings (LEGACY_SETTINGS) into `method_settings`; a
        value given in `method_settings` wins."""
        if not isinstance(data, dict) or not any(key in data for key in LEGACY_SETTINGS):
            return data
        data = dict(data)
        given = data.get("method_settings") or {}
        if not isinstance(given, dict):
            return data  # the field's own validation names the problem
        settings = {name: dict(values) if isinstance(values, dict) else values
                    for name, values in given.items()}
        for key, (method, setting) in LEGACY_SETTINGS.items():
            if key in data:
                value = data.pop(key)
                entry = settings.setdefault(method, {})
                if isinstance(entry, dict):
                    entry.setdefault(setting, value)
        data["method_settings"] = settings
        return data

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
            raise case_error(err) from None
