"""`assert_reliance` for a user's own pytest suite: fail with a readable message when an answer
does not rely on what it should."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.report_model import Report

if TYPE_CHECKING:  # the model stack loads only when a case is audited, not to check a report
    from relyscope.models import CausalLM
    from relyscope.models.loading import ModelOptions

RELIED = frozenset({"relied", "relied-not-attended"})


@lru_cache(maxsize=2)
def shared_model(options: ModelOptions) -> CausalLM:
    """One loaded model per options for the whole test session (loading takes seconds)."""
    return options.load()


def assert_reliance(case_or_report: Case | Report, *, lm: CausalLM | None = None,
                    model: ModelOptions | None = None, config: AuditConfig | None = None,
                    grounded: bool | None = None, relied_on: Iterable[str] = (),
                    not_relied_on: Iterable[str] = (), min_reliance: float | None = None,
                    method: str = "loo") -> Report:
    """Audit (when given a Case) and check the report; returns the report.

    lm: a loaded model; else `model`'s options (default: the packaged model on the CPU),
    loaded once and shared by every call with the same options.
    grounded: the audit must (True) or must not (False) say `grounded`.
    relied_on / not_relied_on: unit ids that must / must not have a relied verdict.
    min_reliance: each `relied_on` unit's `method` score must reach this (nats).
    """
    if isinstance(case_or_report, Case):
        from relyscope.audits import run_audit
        from relyscope.models.loading import ModelOptions

        lm = lm if lm is not None else shared_model(model or ModelOptions())
        report = run_audit(case_or_report, lm, config)
    else:
        report = case_or_report
    problems: list[str] = []
    if grounded is not None and ("grounded" in report.verdicts) != grounded:
        problems.append(f"expected {'grounded' if grounded else 'not grounded'}, "
                        f"audit verdicts are {report.verdicts}")
    known = {u.id: u for u in report.units}
    for uid in relied_on:
        unit = known.get(uid)
        if unit is None:
            problems.append(f"unit {uid!r} is not in the report (units: {sorted(known)})")
            continue
        if unit.verdict not in RELIED:
            problems.append(f"expected the answer to rely on {uid!r}, verdict is "
                            f"{unit.verdict!r} ({method} = {unit.reliance.get(method)})")
        score = unit.reliance.get(method)
        if min_reliance is not None and (score is None or score < min_reliance):
            problems.append(f"{uid!r}: {method} reliance {score} is below {min_reliance}")
    for uid in not_relied_on:
        unit = known.get(uid)
        if unit is not None and unit.verdict in RELIED:
            problems.append(f"expected the answer not to rely on {uid!r}, verdict is "
                            f"{unit.verdict!r} ({method} = {unit.reliance.get(method)})")
    if problems:
        ranking = ", ".join(report.ranking(method)[:5])
        raise AssertionError(f"reliance check failed for case {report.case_id!r} "
                             f"(answer: {report.answer!r}):\n  - " + "\n  - ".join(problems)
                             + f"\n  top units by {method}: {ranking}")
    return report
