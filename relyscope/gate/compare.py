"""The CI gate: did a retrieval change make answers rely less on their sources?

Two runs over the same evaluation set (reports keyed by case id) are compared per query on:
- `grounded`: share of answers whose audit says `grounded` (higher is better);
- `top_source_reliance`: leave-one-out reliance on the top-ranked retrieved source (higher);
- `idle_sources`: share of retrieved sources that are `consulted-not-relied` or `unused` (lower);
- `answer_logprob`: mean answer log-prob per token (higher);
- `answer_agreement`: share of candidate answers equal to the baseline's (reported; gated only
  when a threshold is given).
Each comparison is a paired bootstrap over queries (seeded). The gate fails a metric only when
its whole confidence interval is worse than the metric's tolerance, so noise alone does not
fail a build. Exit codes follow pytest: 0 pass, 1 regression, 2 usage or input error.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relyscope.report_model import Report

IDLE_VERDICTS = frozenset({"consulted-not-relied", "unused"})


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    higher_is_better: bool
    value: Callable[[Report], float | None]


def _grounded(report: Report) -> float:
    return 1.0 if "grounded" in report.verdicts else 0.0


def _top_source_reliance(report: Report) -> float | None:
    sources = [u for u in report.units if u.kind in ("source", "sentence")]
    if not sources:
        return None
    return sources[0].reliance.get("loo")


def _idle_sources(report: Report) -> float | None:
    sources = [u for u in report.units if u.kind in ("source", "sentence") and u.verdict]
    if not sources:
        return None
    return sum(u.verdict in IDLE_VERDICTS for u in sources) / len(sources)


def _logprob_per_token(report: Report) -> float:
    return report.answer_logprob / max(1, report.answer_tokens)


METRICS: tuple[Metric, ...] = (
    Metric("grounded", "share of answers that are grounded", True, _grounded),
    Metric("top_source_reliance", "LOO reliance on the top-ranked source (nats)", True,
           _top_source_reliance),
    Metric("idle_sources", "share of retrieved sources consulted-not-relied or unused", False,
           _idle_sources),
    Metric("answer_logprob", "answer log-prob per token (nats)", True, _logprob_per_token),
)

DEFAULT_TOLERANCES = {"grounded": 0.10, "top_source_reliance": 1.0, "idle_sources": 0.10,
                      "answer_logprob": 0.25, "answer_agreement": None}


@dataclass
class GateSettings:
    tolerances: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0

    @classmethod
    def from_file(cls, path: str | Path | None) -> GateSettings:
        settings = cls()
        if path is None:
            return settings
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as err:
            raise ValueError(f"--thresholds {path}: {err}") from None
        known = set(DEFAULT_TOLERANCES)
        for key, value in data.get("tolerances", {}).items():
            if key not in known:
                raise ValueError(f"--thresholds {path}: unknown metric {key!r} "
                                 f"(known: {', '.join(sorted(known))})")
            settings.tolerances[key] = None if value is None else float(value)
        for key in ("confidence", "resamples", "seed"):
            if key in data:
                setattr(settings, key, type(getattr(settings, key))(data[key]))
        if not 0.5 < settings.confidence < 1.0:
            raise ValueError(f"--thresholds {path}: confidence must be in (0.5, 1)")
        return settings


@dataclass
class MetricResult:
    name: str
    description: str
    higher_is_better: bool
    baseline: float | None
    candidate: float | None
    difference: float | None
    interval: tuple[float, float] | None
    tolerance: float | None
    paired_queries: int
    regressed: bool
    message: str


@dataclass
class GateResult:
    metrics: list[MetricResult]
    queries: int
    missing: list[str]
    settings: GateSettings

    @property
    def passed(self) -> bool:
        return not any(m.regressed for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "queries": self.queries, "missing": self.missing,
                "settings": asdict(self.settings),
                "metrics": [asdict(m) for m in self.metrics]}


def paired_bootstrap(diffs: np.ndarray, *, resamples: int, confidence: float, seed: int
                     ) -> tuple[float, float]:
    """Percentile interval of the mean paired difference."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def compare(baseline: Sequence[Report], candidate: Sequence[Report],
            settings: GateSettings | None = None) -> GateResult:
    settings = settings or GateSettings()
    base = {r.case_id: r for r in baseline}
    cand = {r.case_id: r for r in candidate}
    if len(base) != len(baseline) or len(cand) != len(candidate):
        raise ValueError("a run holds two reports with the same case id")
    shared = sorted(set(base) & set(cand))
    missing = sorted(set(base) ^ set(cand))
    if not shared:
        raise ValueError("the two runs share no case ids: nothing to compare")
    results = [_compare_metric(m.name, m.description, m.higher_is_better,
                               [m.value(base[q]) for q in shared],
                               [m.value(cand[q]) for q in shared], settings)
               for m in METRICS]
    agreement = [1.0 if _same_answer(base[q].answer, cand[q].answer) else 0.0 for q in shared]
    results.append(_agreement(agreement, settings))
    return GateResult(results, len(shared), missing, settings)


def _compare_metric(name: str, description: str, higher_is_better: bool,
                    base: list[float | None], cand: list[float | None],
                    settings: GateSettings) -> MetricResult:
    pairs = [(b, c) for b, c in zip(base, cand, strict=True) if b is not None and c is not None]
    tolerance = settings.tolerances.get(name)
    if not pairs:
        return MetricResult(name, description, higher_is_better, None, None, None, None,
                            tolerance, 0, False, "no query had this metric in both runs")
    b = np.array([p[0] for p in pairs], dtype=float)
    c = np.array([p[1] for p in pairs], dtype=float)
    diffs = c - b
    low, high = paired_bootstrap(diffs, resamples=settings.resamples,
                                 confidence=settings.confidence, seed=settings.seed)
    regressed = False
    if tolerance is not None:
        regressed = high < -tolerance if higher_is_better else low > tolerance
    direction = "higher" if higher_is_better else "lower"
    message = (f"{name}: baseline {b.mean():.3f}, candidate {c.mean():.3f}, difference "
               f"{diffs.mean():+.3f}, {settings.confidence:.0%} CI [{low:+.3f}, {high:+.3f}] "
               f"over {len(pairs)} queries; {direction} is better; tolerance "
               f"{'none' if tolerance is None else f'{tolerance:.3f}'}"
               + (" -> REGRESSION" if regressed else ""))
    return MetricResult(name, description, higher_is_better, float(b.mean()), float(c.mean()),
                        float(diffs.mean()), (low, high), tolerance, len(pairs), regressed,
                        message)


def _agreement(agreement: list[float], settings: GateSettings) -> MetricResult:
    """Agreement has no baseline side: its interval is around the share itself."""
    values = np.array(agreement)
    low, high = paired_bootstrap(values, resamples=settings.resamples,
                                 confidence=settings.confidence, seed=settings.seed)
    tolerance = settings.tolerances.get("answer_agreement")
    regressed = tolerance is not None and high < 1.0 - tolerance
    message = (f"answer_agreement: {values.mean():.3f} of answers unchanged, "
               f"{settings.confidence:.0%} CI [{low:.3f}, {high:.3f}]"
               + (" -> REGRESSION" if regressed else ""))
    return MetricResult("answer_agreement", "share of answers equal to the baseline's", True,
                        1.0, float(values.mean()), float(values.mean()) - 1.0, (low, high),
                        tolerance, len(values), regressed, message)


def _same_answer(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
