"""The CI gate: did a retrieval change make answers rely less on their sources?

Two runs over the same evaluation set (reports keyed by case id) are compared per query on:
- `grounded`: share of answers whose audit says `grounded` (higher is better);
- `top_source_reliance`: leave-one-out reliance on the top-ranked retrieved source (higher);
- `idle_sources`: share of retrieved sources that are `consulted-not-relied` or `unused` (lower);
- `answer_logprob`: mean answer log-prob per token (higher);
- `answer_agreement`: share of candidate answers equal to the baseline's (reported; gated only
  when a threshold is given).
Each comparison is a paired bootstrap over queries (seeded) of the per-query difference
(candidate - baseline). The gate fails a metric only when the difference's whole confidence
interval is worse than the metric's tolerance, so noise alone does not fail a build. The flip
side: with few queries the interval is wide and a real regression passes too. So each gated
metric also gets the smallest change that would fail (tolerance + the interval's half-width),
and the result warns when the set is too small to detect the tolerance (the half-width is
larger than the tolerance, or fewer than `MIN_QUERIES` queries). Exit codes follow pytest:
0 pass, 1 regression, 2 usage or input error.
"""

from __future__ import annotations

import json
import logging
import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relyscope.report_model import Report

IDLE_VERDICTS = frozenset({"consulted-not-relied", "unused"})
MIN_QUERIES = 10  # below this a bootstrap interval says little, however narrow it looks

log = logging.getLogger(__name__)


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
    half_width: float | None = None  # of the difference's interval: the noise level
    detectable: float | None = None  # the smallest change that fails: tolerance + half_width
    underpowered: bool = False  # too few queries to detect a change of the tolerance
    warning: str | None = None


@dataclass
class GateResult:
    metrics: list[MetricResult]
    queries: int
    missing: list[str]
    settings: GateSettings
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(m.regressed for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "queries": self.queries, "missing": self.missing,
                "warnings": self.warnings, "settings": asdict(self.settings),
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
    warnings = [m.warning for m in results if m.warning]
    for warning in warnings:
        log.warning("relyscope gate: %s", warning)
    return GateResult(results, len(shared), missing, settings, warnings)


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
    power = _power(name, (low, high), tolerance, len(pairs), settings, worse="a drop"
                   if higher_is_better else "a rise")
    message = (f"{name}: baseline {b.mean():.3f}, candidate {c.mean():.3f}, difference "
               f"{diffs.mean():+.3f}, {settings.confidence:.0%} CI of the difference "
               f"[{low:+.3f}, {high:+.3f}] over {len(pairs)} queries; {direction} is better; "
               f"tolerance {'none' if tolerance is None else f'{tolerance:.3f}'}"
               + ("" if power.detectable is None
                  else f"; smallest failing change {power.detectable:.3f}")
               + (" -> REGRESSION" if regressed else ""))
    return MetricResult(name, description, higher_is_better, float(b.mean()), float(c.mean()),
                        float(diffs.mean()), (low, high), tolerance, len(pairs), regressed,
                        message, power.half_width, power.detectable, power.underpowered,
                        power.warning)


@dataclass(frozen=True)
class _Power:
    half_width: float
    detectable: float | None
    underpowered: bool
    warning: str | None


def _power(name: str, interval: tuple[float, float], tolerance: float | None, n: int,
           settings: GateSettings, *, worse: str) -> _Power:
    """Can `n` queries detect a change of `tolerance`? The gate fails when the interval clears
    the tolerance, so a true change must exceed tolerance + half-width to fail."""
    half_width = (interval[1] - interval[0]) / 2
    if tolerance is None:
        return _Power(half_width, None, False, None)
    detectable = tolerance + half_width
    if half_width <= tolerance and n >= MIN_QUERIES:
        return _Power(half_width, detectable, False, None)
    if half_width > tolerance:
        needed = math.ceil(n * (half_width / max(tolerance, 1e-9)) ** 2)
        why = (f"the {settings.confidence:.0%} CI of the difference is ±{half_width:.3f}, wider "
               f"than the tolerance, so only {worse} beyond {detectable:.3f} would fail; about "
               f"{needed} queries would bring it under the tolerance")
    else:
        why = (f"fewer than {MIN_QUERIES} queries: the bootstrap interval (±{half_width:.3f}) "
               "cannot be trusted")
    warning = (f"{name}: the evaluation set ({n} queries) is too small to detect {worse} of "
               f"{tolerance:.3f} (the tolerance): {why}")
    return _Power(half_width, detectable, True, warning)


def _agreement(agreement: list[float], settings: GateSettings) -> MetricResult:
    """The baseline agrees with itself (1.0): the difference is the share unchanged - 1."""
    diffs = np.array(agreement) - 1.0
    low, high = paired_bootstrap(diffs, resamples=settings.resamples,
                                 confidence=settings.confidence, seed=settings.seed)
    tolerance = settings.tolerances.get("answer_agreement")
    regressed = tolerance is not None and high < -tolerance
    power = _power("answer_agreement", (low, high), tolerance, len(diffs), settings,
                   worse="a drop")
    message = (f"answer_agreement: {1.0 + diffs.mean():.3f} of answers unchanged, "
               f"{settings.confidence:.0%} CI of the difference [{low:+.3f}, {high:+.3f}]"
               + (" -> REGRESSION" if regressed else ""))
    return MetricResult("answer_agreement", "share of answers equal to the baseline's", True,
                        1.0, float(1.0 + diffs.mean()), float(diffs.mean()), (low, high),
                        tolerance, len(diffs), regressed, message, power.half_width,
                        power.detectable, power.underpowered, power.warning)


def _same_answer(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
