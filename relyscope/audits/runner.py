"""The audit runner: plan every variant, share batches and the cache, honour budgets, report.

Order of work (and of cuts when a budget runs out): the full answer and the joint removal of
all units, then the methods in registry priority order (attention, leave-one-out, tool
ablation, context ablation, causal tracing), and last the faithfulness checks. All removal
variants the score-based methods will need (their `plan`) are scored up front in one batched
call (with no budget, together with the full answer and the joint removal), so every shared
token prefix runs once and duplicate variants (an ablation mask equal to a leave-one-out
removal, say) run once. A budget cut never raises: the report is marked partial and says
what was cut.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import relyscope
from relyscope.audits.base import (
    ANSWER,
    AuditContext,
    Budget,
    BudgetExhausted,
    MethodResult,
    Probe,
    Progress,
)
from relyscope.audits.claims import claim_reports, resolve_claims
from relyscope.audits.method import AuditMethod
from relyscope.audits.metrics import faithfulness, plan_probes, rank_correlation
from relyscope.audits.proxy import proxy_block, proxy_warnings
from relyscope.audits.registry import (
    default_methods,
    method_class,
    method_names,
    methods_of_kind,
    settings_for,
    unit_score_columns,
    validate_config,
)
from relyscope.audits.verdicts import RELATIVE_VOTE, audit_verdicts, unit_reliance, unit_verdict
from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig
from relyscope.errors import AuditCancelled, BudgetTooSmall, ScoringStopped
from relyscope.models import CausalLM, Variant
from relyscope.models.budget import check_input_budget
from relyscope.report_model import Report, UnitReport, snippet

# of a deadline's time, what is kept after the last model call for building the report (the
# service keeps its own margin for sending it): this share, at most this many seconds
_REPORT_RESERVE_SHARE = 0.05
_REPORT_RESERVE_MAX_S = 0.5


def __getattr__(name: str) -> object:
    """`PRIORITY` (deprecated: use registry.method_names()) reads the registry when asked."""
    if name == "PRIORITY":
        return method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_for_audit(case: Case, lm: CausalLM, config: AuditConfig) -> None:
    if not case.sources and not case.tool_calls:
        raise CaseError("sources", "nothing to audit: the case has no sources and no tool calls",
                        record=case.id)
    if case.answer is not None:
        answer_tokens = len(lm.tokenizer(case.answer, add_special_tokens=False)["input_ids"])
        limit = lm.info.max_positions
        if limit and answer_tokens >= limit:
            raise CaseError("answer", f"the answer is {answer_tokens} tokens, longer than the "
                                      f"model's context of {limit} tokens", record=case.id)


def run_audit(case: Case, lm: CausalLM, config: AuditConfig | None = None, *,
              progress: Progress | None = None, deadline: float | None = None,
              cancelled: Callable[[], bool] | None = None) -> Report:
    """Audit one case. `deadline` is a time.monotonic() value (e.g. from a gRPC call);
    `cancelled()` turning true stops the work before the next model call (AuditCancelled)."""
    config = config or AuditConfig()
    emit = progress or (lambda event: None)
    wanted = list(validate_config(config))
    started = time.monotonic()
    cost_before = lm.cost.snapshot()
    case, budget, generated = _prepare(case, lm, config, started, deadline, cancelled)
    warnings = ["answer generated greedily by the audit model"] if generated else []
    claim_spans, claims_from = resolve_claims(case, config)
    ctx = AuditContext(case, lm, config, budget, emit)
    built = {name: method_class(name)() for name in wanted}
    methods = {name: method for name, method in built.items() if method.applies(ctx)}

    shared = _score_shared(ctx, methods)
    full = ctx.full_score()
    joint = ctx.score([_joint_removal(ctx)])[_joint_removal(ctx)]
    run = _run_methods(ctx, methods, shared, emit)
    results, cuts = run.results, run.cuts

    claims_before, claims_started = ctx.passes, time.perf_counter()
    claims = claim_reports(ctx, methods, results, claim_spans) if claim_spans else []
    claims_cost = {"forward_passes": ctx.passes - claims_before,
                   "seconds": time.perf_counter() - claims_started}
    faith = _faithfulness(ctx, results, cuts)
    stability = None
    if config.stability and "loo" in results and not cuts:
        stability = _stability(case, lm, config, budget, results["loo"])

    _raise_if_cancelled(budget)
    try:
        proxy = None if generated else proxy_block(ctx, full.total)
    except BudgetExhausted as stop:  # its generation would overrun the deadline
        proxy, cuts["proxy"] = None, stop.reason
    report = _build_report(ctx, results, faith, full.total, joint.total, stability)
    report.errors = run.errors
    report.partial = bool(cuts)
    report.proxy = proxy  # before the cost
    report.warnings = warnings + [f"{name} cut: {why}" for name, why in cuts.items()]
    report.warnings += proxy_warnings(report.proxy)
    for result in results.values():  # a method's own checks (the learned estimate's, say)
        report.warnings += result.extras.get("warnings", [])
        report.verdicts += [v for v in result.extras.get("audit_verdicts", [])
                            if v not in report.verdicts]
    spent = lm.cost - cost_before
    attributed = shared.attributed or {}
    report.cost = {**spent.as_dict(), "forward_passes": budget.spent,
                   "seconds": time.monotonic() - started,
                   "shared_scoring_seconds": shared.seconds,
                   "per_method": {n: {"forward_passes": r.forward_passes + attributed.get(n, 0)
                                      + (n == shared.attention_by),
                                      "seconds": r.seconds} for n, r in results.items()}}
    report.settings = _settings(ctx, cuts, list(built))
    if claims_from is not None:
        report.claims = claims
        report.cost["claims"] = claims_cost  # zero: claims reuse the audit's passes
        report.settings["claims"] = {"from": claims_from, "char_spans": claim_spans}
    emit({"event": "report", "report": report})
    return report


def _prepare(case: Case, lm: CausalLM, config: AuditConfig, started: float,
             deadline: float | None, cancelled: Callable[[], bool] | None
             ) -> tuple[Case, Budget, bool]:
    """Check the input, set the budget, and generate a missing answer. Returns the case to
    audit, its budget, and whether the answer was generated."""
    validate_for_audit(case, lm, config)
    check_input_budget(case, lm, config)  # before generating or scoring
    ends = [t for t in (deadline, started + config.max_seconds if config.max_seconds else None)
            if t is not None]
    end = min(ends) if ends else None
    if end is not None:  # model work stops early enough to build the report by the end
        end -= min(_REPORT_RESERVE_MAX_S, _REPORT_RESERVE_SHARE * max(0.0, end - started))
    budget = Budget(max_passes=config.max_forward_passes, deadline=end, cancelled=cancelled)
    if budget.deadline is not None:
        lm.calibrate()  # a measured cost per token sizes the first calls against the deadline
    if case.answer is not None:
        return case, budget, False
    return _generate_answer(case, lm, config, budget), budget, True


def _joint_removal(ctx: AuditContext) -> Probe:
    return ctx.removal(ctx.unit_ids), ANSWER


@dataclass
class _SharedScoring:
    """The variants scored up front for every method: how many each method brought (None
    until they are scored) and the seconds that took."""

    attributed: dict[str, int] | None = None
    seconds: float = 0.0
    attention_by: str | None = None  # the method the attention pass run up front is for


def _score_shared(ctx: AuditContext, methods: dict[str, AuditMethod]) -> _SharedScoring:
    """The full answer and the joint removal, and with no budget every planned variant in the
    same call. Under a budget only the first two: a budget that cannot afford them fails the
    audit, and the planned variants are scored before the first method that needs them."""
    budget = ctx.budget
    shared = _SharedScoring()
    started = time.perf_counter()
    if ctx.config.preset == "fast" and any(m.reads_attention for m in methods.values()):
        # in the fast preset the attention pass scores the full answer too: one pass fewer
        with contextlib.suppress(BudgetExhausted):
            ctx.answer_attention()
            shared.attention_by = next(n for n, m in methods.items() if m.reads_attention)
    head = [(Variant(), ANSWER), _joint_removal(ctx)]
    if budget.unbounded:  # nothing can be cut: every variant goes in one call
        planned, shared.attributed = _plan(ctx, methods)
        try:
            ctx.score(head + planned)
        except BudgetExhausted:  # only a cancellation stops an unbounded audit
            _raise_if_cancelled(budget)
            raise
        shared.seconds = time.perf_counter() - started
        return shared
    try:
        ctx.score(head)
    except BudgetExhausted as stop:
        _raise_if_cancelled(budget)
        needed = 2 * len(ctx.full.input_ids) * (ctx.lm.seconds_per_token or 0.0)
        raise BudgetTooSmall(f"{stop.reason}; the full answer and the joint removal need "
                             f"about {needed:.2f} s of model time here") from None
    return shared


@dataclass
class _MethodRun:
    results: dict[str, MethodResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cuts: dict[str, str] = field(default_factory=dict)


def _run_methods(ctx: AuditContext, methods: dict[str, AuditMethod], shared: _SharedScoring,
                 emit: Progress) -> _MethodRun:
    """Each method in priority order; a failing method is an event, not the end of the audit."""
    run = _MethodRun()
    for name, method in methods.items():
        if shared.attributed is None and method.plan(ctx):
            started = time.perf_counter()
            shared.attributed = _prescore(ctx, methods)
            shared.seconds = time.perf_counter() - started
        emit({"event": "method_started", "method": name})
        try:
            result = method.run(ctx)
        except Exception as err:
            run.errors[name] = f"{type(err).__name__}: {err}"
            emit({"event": "method_failed", "method": name, "error": run.errors[name]})
            continue
        run.results[name] = result
        if result.cut:
            run.cuts[name] = result.cut
        emit({"event": "method_finished", "method": name, "scores": result.scores,
              "forward_passes": result.forward_passes, "seconds": result.seconds})
    return run


def _faithfulness(ctx: AuditContext, results: dict[str, MethodResult], cuts: dict[str, str]
                  ) -> dict[str, dict[str, Any]]:
    """The audit's own faithfulness checks (top-k removal and keep-only variants); a budget
    cut here is recorded in `cuts`. The fast preset relies on its estimate's own check."""
    if not results or ctx.config.preset == "fast":
        return {}
    try:
        scored = ctx.score(plan_probes(ctx, results))
    except BudgetExhausted as stop:
        scored = stop.scored
        cuts["faithfulness"] = stop.reason
    return faithfulness(ctx, results, scored)


def _generate_answer(case: Case, lm: CausalLM, config: AuditConfig, budget: Budget) -> Case:
    """The case with the audit model's greedy answer, generated under the audit's stop check
    (nothing can be audited before it exists: a stop here fails the audit)."""
    try:
        with lm.stopping(budget.stop):
            return lm.answer(case, tool_mode=config.tool_mode)
    except ScoringStopped as stop:
        _raise_if_cancelled(budget)
        raise BudgetTooSmall(f"{stop.reason} (generating the answer)") from None


def _raise_if_cancelled(budget: Budget) -> None:
    if budget.cancelled is not None and budget.cancelled():
        raise AuditCancelled("the audit was cancelled")


def _plan(ctx: AuditContext, methods: dict[str, AuditMethod]
          ) -> tuple[list[Probe], dict[str, int]]:
    """Every variant the score-based methods will ask for, in method priority order, and the
    number attributed to each method: those no higher-priority method needed."""
    probes: list[Probe] = []
    attributed: dict[str, int] = {}
    for name, method in methods.items():
        plan = method.plan(ctx)
        if plan:
            before = len(set(probes))
            probes += plan
            attributed[name] = len(set(probes)) - before
    return probes, attributed


def _prescore(ctx: AuditContext, methods: dict[str, AuditMethod]) -> dict[str, int]:
    """Score the planned variants in one batched call, in priority order so a budget cuts
    the lowest-priority work first."""
    probes, attributed = _plan(ctx, methods)
    with contextlib.suppress(BudgetExhausted):  # each method records its own cut
        ctx.score(probes)
    return attributed


def _stability(case: Case, lm: CausalLM, config: AuditConfig, budget: Budget,
               loo: MethodResult) -> float | None:
    """Rank correlation of leave-one-out under a paraphrased query."""
    paraphrase = case.metadata.get("paraphrase") or f"Please tell me: {case.query}"
    other = case.model_copy(update={"query": paraphrase})
    ctx = AuditContext(other, lm, config, budget)
    moved = method_class("loo")().run(ctx)  # a budget cut leaves its scores None
    return rank_correlation(loo.scores, moved.scores)


def _build_report(ctx: AuditContext, results: dict[str, MethodResult],
                  faith: dict[str, dict[str, Any]], full: float, joint: float,
                  stability: float | None) -> Report:
    thresholds = ctx.config.thresholds
    relative = results.get(RELATIVE_VOTE)
    relative_scale = max((abs(s) for s in (relative.scores.values() if relative else [])
                          if s is not None), default=0.0)
    provenance_methods = [(method_class(name)(), results[name])
                          for name in methods_of_kind("provenance") if name in results]
    # a unit's reliance keys: every default method's (None where it did not run, so the
    # report's shape stays the same whatever ran) and any opt-in method that ran
    defaults = set(default_methods())
    reliance_keys = [name for name in unit_score_columns() if name in defaults or name in results]
    units: list[UnitReport] = []
    for unit in ctx.units:
        provenance: dict[str, float | None] = {}
        for method, result in provenance_methods:
            provenance.update(method.unit_provenance(result, unit.id))
        reliance = {name: results[name].scores.get(unit.id) if name in results else None
                    for name in reliance_keys}
        share = provenance.get("attention_share")
        voted = unit_reliance(reliance, relative_scale, thresholds)
        if voted is None and ctx.config.preset == "fast":  # asked for: the estimate votes
            voted = reliance.get("learned")
        verdict = unit_verdict(voted, share, len(ctx.units), thresholds)
        units.append(UnitReport(id=unit.id, kind=unit.kind, parent=unit.parent,
                                provenance=provenance, reliance=reliance, verdict=verdict,
                                text=snippet(unit.text), char_span=unit.char_span,
                                title=unit.title))
    loo = results.get("loo")
    singles = [s for s in (loo.scores.values() if loo else []) if s is not None]
    answer_tokens = len(ctx.full.target_ids)
    verdicts = audit_verdicts(logprob_per_token=full / answer_tokens, joint_drop=full - joint,
                              max_single_drop=max(singles) if singles else None,
                              stability=stability, thresholds=thresholds)
    extras = {name: {**r.extras, "cut": r.cut} for name, r in results.items()}
    extras["joint_removal"] = {"drop": full - joint, "logprob_without_all": joint}
    if stability is not None:
        extras["stability"] = {"loo_spearman_under_paraphrase": stability}
    return Report(case_id=ctx.case.id, answer=ctx.case.answer or "", answer_logprob=full,
                  answer_tokens=answer_tokens, units=units, verdicts=verdicts,
                  faithfulness=faith, methods=extras)


def _settings(ctx: AuditContext, cuts: dict[str, str], methods: list[str]) -> dict[str, Any]:
    """Every setting used: the config with the methods run and each one's resolved settings."""
    info = ctx.lm.info
    config = ctx.config.model_dump(mode="json")
    config["methods"] = methods
    config["method_settings"] = {name: settings_for(ctx.config, name).model_dump(mode="json")
                                 for name in methods}
    return {
        "config": config,
        "model": {"id": info.id, "revision": info.revision, "dtype": info.dtype,
                  "device": info.device},
        "tool_mode": ctx.renderer.tool_mode,
        "granularity": ctx.config.granularity,
        "removal": ctx.config.removal,
        "score": "teacher-forced sum of answer token log-probs (nats)",
        "cut": cuts,
        "versions": {"relyscope": relyscope.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
