"""What every audit method shares: the rendered case, the budget, and the model's entry points.

Methods (relyscope.audits.method) read everything from an `AuditContext`. Score-based methods
ask `ctx.score(probes)` for the answer log-prob (or a later tool call's log-prob) under prompt
variants; the context renders each variant once, scores them through the backend's batched,
prefix-shared, cached scorer, and charges the budget. Because the cache is shared, a variant
two methods both need (the full prompt, a removal) is run once. Hooked passes (attention,
noise, restoration) go through the context too: every forward pass is counted once, by the
backend's `cost`, and the context charges the budget with what that counter moved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from relyscope.case import Case, Unit
from relyscope.config import AuditConfig
from relyscope.errors import ScoringStopped
from relyscope.models import (
    AnswerAttention,
    CausalLM,
    Edits,
    GradientAttribution,
    GradientMethod,
    Knockout,
    Rendered,
    Renderer,
    ScoreItem,
    Span,
    TargetScore,
    Variant,
    placeholder_for,
)
from relyscope.models.tree import TokenTrie

# A probe is a variant plus what is scored: the answer (None) or the call of tool k.
Probe = tuple[Variant, int | None]
ANSWER: int | None = None

_SCORE_CHUNK = 16
# a model call's measured cost is an estimate (a shared CPU's load moves it by half): a call
# starts under a deadline only when this many times its estimate still fits
_DEADLINE_SAFETY = 1.5
# under a deadline one scoring call (a trie chunk, a padded batch) is sized, by the cost per
# token measured on the call before it, to at most this share of the time left: a call that
# runs several times slower than measured (load on a shared CPU) still ends in time, and
# calls shrink as the deadline nears
_CALL_SHARE = 1 / 3
# with a cancel check (the service's audits) a scoring call is sized to about this long, so
# a cancelled audit stops within about this long and the next request does not wait for it
_CANCEL_CALL_SECONDS = 1.0
# no smaller call: shorter ones are mostly fixed overhead and do not measure the cost per token
_MIN_CALL_TOKENS = 64
T = TypeVar("T")


class BudgetExhausted(Exception):
    """The pass or time budget ran out; `scored` holds what was scored before it did."""

    def __init__(self, reason: str, scored: dict[Probe, TargetScore]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.scored = scored


@dataclass
class Budget:
    max_passes: int | None = None
    deadline: float | None = None  # time.monotonic() value
    spent: int = 0
    cancelled: Callable[[], bool] | None = None  # true once the caller has gone away

    @property
    def unbounded(self) -> bool:
        return self.max_passes is None and self.deadline is None

    def remaining_passes(self) -> int | None:
        return None if self.max_passes is None else max(0, self.max_passes - self.spent)

    def remaining_seconds(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self, passes: int) -> str | None:
        """Why `passes` more forward passes may not run now, or None when they may."""
        left = self.remaining_passes()
        if left is not None and passes > left:
            return f"pass budget: {self.spent} of {self.max_passes} spent"
        seconds = self.remaining_seconds()
        if seconds is not None and seconds <= 0:
            return "time budget reached"
        return self.stop(0.0)

    def call_tokens(self, seconds_per_token: float | None) -> int | None:
        """The most tokens the next scoring call may run, by the measured `seconds_per_token`:
        its estimate at most `_CALL_SHARE` of the time left and, when the audit can be
        cancelled, about `_CANCEL_CALL_SECONDS`; at least `_MIN_CALL_TOKENS` (the stop check
        still refuses a call that cannot end in time). None when nothing caps it."""
        if not seconds_per_token:
            return None
        caps = []
        seconds = self.remaining_seconds()
        if seconds is not None:
            caps.append(max(0.0, seconds) * _CALL_SHARE)
        if self.cancelled is not None:
            caps.append(_CANCEL_CALL_SECONDS)
        if not caps:
            return None
        return max(_MIN_CALL_TOKENS, int(min(caps) / seconds_per_token))

    def stop(self, expected_seconds: float) -> str | None:
        """Why a model call expected to take `expected_seconds` must not start now (it would
        end after the deadline, or the audit was cancelled), or None. Checked by the backend
        before every model call of the audit."""
        if self.cancelled is not None and self.cancelled():
            return "cancelled"
        seconds = self.remaining_seconds()
        if seconds is not None and expected_seconds * _DEADLINE_SAFETY >= seconds:
            return ("time budget: the next model call (about "
                    f"{expected_seconds:.2f} s) would end after the deadline")
        return None


@dataclass
class MethodResult:
    """Scores per unit id (None where a unit was not scored) plus method-specific extras."""

    method: str
    scores: dict[str, float | None]
    extras: dict[str, Any] = field(default_factory=dict)
    forward_passes: int = 0
    seconds: float = 0.0
    cut: str | None = None
    # method-private data its `claim_scores` reads (per-token attention, say); not reported
    detail: Any = None


Progress = Callable[[dict[str, Any]], None]


class AuditContext:
    """One case, rendered for one backend, with a budget. Methods read everything from here."""

    def __init__(self, case: Case, lm: CausalLM, config: AuditConfig, budget: Budget,
                 progress: Progress | None = None) -> None:
        self.case = case
        self.lm = lm
        self.config = config
        self.budget = budget
        self.progress = progress or (lambda event: None)
        self.renderer: Renderer = lm.renderer(case, granularity=config.granularity,
                                              tool_mode=config.tool_mode)
        self.units: list[Unit] = self.renderer.units
        self.unit_ids: list[str] = [u.id for u in self.units]
        self._rendered: dict[Probe, Rendered] = {}
        self._seconds_per_pass: float | None = None
        self._scores: dict[Probe, TargetScore] = {}
        self._attention: AnswerAttention | None = None
        self.full: Rendered = self.render((Variant(), ANSWER))
        lm.check_fits([self.full])

    # -- variants ---------------------------------------------------------------------------

    def removal(self, unit_ids: Sequence[str] | frozenset[str]) -> Variant:
        """Remove units, or replace them by neutral placeholders in placeholder mode."""
        if self.config.removal == "placeholder":
            texts = {u.id: placeholder_for(u.text) for u in self.units if u.id in set(unit_ids)}
            return Variant.replacing(texts)
        return Variant.without(unit_ids)

    def keep_only(self, unit_ids: Sequence[str]) -> Variant:
        keep = set(unit_ids)
        return self.removal([u for u in self.unit_ids if u not in keep])

    def render(self, probe: Probe) -> Rendered:
        if probe not in self._rendered:
            variant, tool_index = probe
            if tool_index is None:
                self._rendered[probe] = self.renderer.render(variant)
            else:
                self._rendered[probe] = self.renderer.render(
                    variant, target=self.renderer.tool_call_text(tool_index), upto_tool=tool_index)
        return self._rendered[probe]

    # -- scoring ----------------------------------------------------------------------------

    def score(self, probes: Sequence[Probe], *, max_prefix: int | None = None
              ) -> dict[Probe, TargetScore]:
        """Scores for the probes, charged to the budget; BudgetExhausted when it runs out."""
        wanted = list(dict.fromkeys(p for p in probes if p not in self._scores))
        while wanted:
            # without a deadline nothing changes between chunks (a pass budget is known up
            # front): one call, so every variant shares the token trie; with a deadline,
            # chunks, so the time left is checked between them
            step = (len(wanted) if self.budget.deadline is None
                    else min(_SCORE_CHUNK, len(wanted)))
            affordable = self._affordable(step, wanted[:step])
            if affordable == 0:
                reason = self.budget.check(1) or "time budget: the next pass would not finish"
                raise BudgetExhausted(reason, {p: self._scores[p] for p in probes
                                               if p in self._scores})
            chunk, wanted = wanted[:affordable], wanted[affordable:]
            before, started = self.budget.spent, time.monotonic()
            try:
                results = self._metered(lambda chunk=chunk: self._score_keeping(
                    chunk, max_prefix))
            except BudgetExhausted as stop:  # a stop between model calls: keep what ran
                raise BudgetExhausted(stop.reason, {p: self._scores[p] for p in probes
                                                    if p in self._scores}) from None
            ran = self.budget.spent - before
            if ran:
                self._seconds_per_pass = (time.monotonic() - started) / ran
            self._scores.update(zip(chunk, results, strict=True))
        return {p: self._scores[p] for p in probes}

    def _score_keeping(self, chunk: list[Probe], max_prefix: int | None
                       ) -> list[TargetScore]:
        """Score a chunk; when the backend stops between model calls, keep what it scored."""
        try:
            return self.lm.score([self.render(p) for p in chunk], max_prefix=max_prefix)
        except ScoringStopped as stopped:
            self._scores.update({chunk[i]: score for i, score in stopped.done.items()})
            raise

    def _affordable(self, wanted: int, probes: Sequence[Probe] = ()) -> int:
        """How many of `wanted` passes fit the pass budget and, by the last measured pass
        time, the time left before the deadline."""
        if self.budget.check(1) is not None:
            return 0
        passes = self.budget.remaining_passes()
        fit = wanted if passes is None else min(wanted, passes)
        seconds = self.budget.remaining_seconds()
        if seconds is not None and probes and self.lm.seconds_per_token:
            # the measured cost per token times the tokens the first k probes' shared token
            # trie runs: the most probes whose call ends before the deadline
            fit = min(fit, self._fit_by_tokens(
                probes[:fit], seconds / (self.lm.seconds_per_token * _DEADLINE_SAFETY)))
        elif seconds is not None and self._seconds_per_pass:
            fit = min(fit, int(seconds / (self._seconds_per_pass * _DEADLINE_SAFETY)))
        return max(0, fit)

    def _fit_by_tokens(self, probes: Sequence[Probe], tokens: float) -> int:
        """How many of `probes`, in order, fit in `tokens` tokens of model work."""
        fit = 0
        for k in range(1, len(probes) + 1):
            if len(TokenTrie.build([self.render(p).input_ids for p in probes[:k]])) > tokens:
                break
            fit = k
        return fit

    def cached(self, probes: Sequence[Probe]) -> dict[Probe, TargetScore]:
        """The probes this audit already scored (never runs the model)."""
        return {p: self._scores[p] for p in probes if p in self._scores}

    def full_score(self) -> TargetScore:
        return self.score([(Variant(), ANSWER)])[(Variant(), ANSWER)]

    def score_available(self, probes: Sequence[Probe]) -> tuple[dict[Probe, TargetScore],
                                                                  str | None]:
        """Scores for as many probes as the budget affords, and why it stopped (or None)."""
        try:
            return self.score(probes), None
        except BudgetExhausted as stop:
            return stop.scored, stop.reason

    # -- everything else that runs the model ----------------------------------------------

    @property
    def passes(self) -> int:
        """Forward passes charged to this audit so far."""
        return self.budget.spent

    def _metered(self, work: Callable[[], T]) -> T:
        """Run `work` and charge the budget with the passes the backend counted for it."""
        before = self.lm.cost.forward_passes
        try:
            with self.lm.stopping(self.budget.stop, self.budget.call_tokens):
                return work()
        except ScoringStopped as stopped:  # the deadline or a cancellation, between calls
            raise BudgetExhausted(stopped.reason, {}) from None
        finally:
            self.budget.spent += self.lm.cost.forward_passes - before

    def require(self, passes: int) -> None:
        """BudgetExhausted unless `passes` more forward passes may run now."""
        reason = self.budget.check(passes)
        if reason is not None:
            raise BudgetExhausted(reason, {})

    def answer_attention(self) -> AnswerAttention:
        """The attention of the rows that predict the answer, per layer and head, of the full
        prompt + answer (one pass, kept for the audit: every method reading attention shares
        it)."""
        if self._attention is None:
            self.require(1)
            attention, answer = self._metered(lambda: self.lm.attention_pass(
                self.full.input_ids, self.full.target_predicting_positions,
                len(self.full.target_ids)))
            self._attention = attention
            # the fast preset takes the full answer's score from this pass (one pass fewer);
            # other audits keep the plain scorer's, so their scores never depend on whether
            # a deadline put the attention pass first
            if answer is not None and self.config.preset == "fast":
                self._scores.setdefault((Variant(), ANSWER), answer)
        return self._attention

    def edited_logprobs(self, edits: Edits) -> torch.Tensor:
        """Answer log-prob per row of the full prompt + answer under `edits` (rows passes)."""
        return self._metered(lambda: self.lm.edited_logprobs(
            self.full.input_ids, len(self.full.target_ids), edits))

    def clean_span_states(self, span: Span) -> list[torch.Tensor]:
        """Each layer's clean output at the span's positions in the full rendering (one pass)."""
        return self._metered(lambda: self.lm.clean_span_states(self.full.input_ids, span))

    def score_tokens(self, items: Sequence[ScoreItem]) -> list[TargetScore]:
        """Scores of raw token sequences (cached: only misses cost passes)."""
        return self._metered(lambda: self.lm.score_tokens(items))

    def generate(self, probe: Probe, max_new_tokens: int) -> str:
        """Greedy continuation of a probe's prompt (one pass)."""
        return self._metered(lambda: self.lm.generate(self.render(probe).prompt_ids,
                                                      max_new_tokens=max_new_tokens))

    def knockout_logprobs(self, knockouts: Sequence[Knockout], batch: int = 8) -> torch.Tensor:
        """Log-prob of each answer token of the full rendering with each knockout's attention
        edges removed: [knockouts, answer tokens] (one pass per knockout)."""
        return self._metered(lambda: self.lm.knockout_token_logprobs(
            self.full.input_ids, len(self.full.target_ids), knockouts, batch=batch))

    def gradient_attribution(self, method: GradientMethod, baseline_positions: Sequence[int],
                             steps: int, batch: int) -> GradientAttribution:
        """Per-token gradient attributions of the full answer's log-prob (its forward+backward
        passes charged as passes)."""
        return self._metered(lambda: self.lm.gradient_attribution(
            self.full.input_ids, len(self.full.target_ids), method=method,
            baseline_positions=baseline_positions, steps=steps, batch=batch))
