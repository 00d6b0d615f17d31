"""Verdicts from scores, with thresholds the report records.

Per unit: `relied` (reliance high and attended), `relied-not-attended`, `consulted-not-relied`
(attention high, reliance low), `unused`. Reliance for a verdict is the largest of the voting
methods' scores (the registry's `voting_methods()`: the removals loo, tools, ablation), all in
nats of answer log-prob; tracing is a localisation, not a removal, and does not vote. An
ablation weight votes only when it is also a large share of the largest weight: with few
units, interactions put several nats of noise on the weights of units that do not matter
(measured on the bundled example: 7.6 nats on an unused tool output next to 51 on the relied
source). Per audit: `grounded` (removing the context
costs the answer), `parametric` (the answer is confident and removing everything costs
nothing), `redundant-sources` (no single removal matters much, the joint removal does),
`unstable` (the ranking moves under a paraphrased query).
"""

from __future__ import annotations

from relyscope.audits.registry import voting_methods
from relyscope.config import Thresholds

RELATIVE_VOTE = "ablation"  # votes only above a share of its largest weight (see above)


def unit_reliance(reliance: dict[str, float | None], ablation_scale: float,
                  thresholds: Thresholds) -> float | None:
    values: list[float] = []
    for method in voting_methods():
        value = reliance.get(method)
        if value is None:
            continue
        if method == RELATIVE_VOTE and value < thresholds.ablation_relative * ablation_scale:
            continue  # a small share of the largest weight: noise, not a vote
        values.append(value)
    return max(values) if values else None


def unit_verdict(reliance: float | None, attention_share: float | None, n_units: int,
                 thresholds: Thresholds) -> str | None:
    if reliance is None and attention_share is None:
        return None
    relied = reliance is not None and reliance >= thresholds.relied_drop
    attended = (attention_share is not None
                and attention_share >= thresholds.attended_ratio / max(1, n_units))
    if relied:
        return "relied" if attended or attention_share is None else "relied-not-attended"
    return "consulted-not-relied" if attended else "unused"


def audit_verdicts(*, logprob_per_token: float, joint_drop: float | None,
                   max_single_drop: float | None, stability: float | None,
                   thresholds: Thresholds) -> list[str]:
    verdicts: list[str] = []
    if joint_drop is not None:
        if joint_drop >= thresholds.relied_drop:
            verdicts.append("grounded")
            single = max(max_single_drop or 0.0, 1e-6)
            if (max_single_drop is not None
                    and max_single_drop < thresholds.relied_drop * thresholds.redundancy_ratio
                    and joint_drop >= thresholds.redundancy_ratio * single):
                verdicts.append("redundant-sources")
        elif logprob_per_token >= thresholds.parametric_logprob_per_token:
            verdicts.append("parametric")
    if stability is not None and stability < thresholds.unstable_spearman:
        verdicts.append("unstable")
    return verdicts
