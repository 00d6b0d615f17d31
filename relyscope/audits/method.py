"""The method contract: what an audit method declares and the one `run` every method shares.

A method is a subclass of `AuditMethod` that sets the class attributes below and implements
`compute(ctx, settings)`. Defining the subclass registers it (relyscope.audits.registry):
the runner, verdicts, the report columns, the CLI and the gRPC config then know it, with no
other file edited. `run` owns what every method used to repeat: timing, pass counting
(the context's), a budget cut turned into `cut`, and the `MethodResult`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, final

from pydantic import BaseModel, ConfigDict, ValidationError

from relyscope.audits import registry
from relyscope.audits.base import AuditContext, BudgetExhausted, MethodResult, Probe
from relyscope.case import field_path
from relyscope.config import AuditConfig
from relyscope.errors import CaseError

Kind = Literal["provenance", "reliance", "localisation"]


class MethodSettings(BaseModel):
    """Base of every method's settings: unknown names are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSettings(MethodSettings):
    pass


@dataclass
class Outcome:
    """What `compute` returns: scores per unit id (None: not scored), extras, and why the
    method stopped early (None: it did not)."""

    scores: dict[str, float | None]
    extras: dict[str, Any] = field(default_factory=dict)
    cut: str | None = None
    detail: Any = None  # kept on the MethodResult for `claim_scores`; not reported


class AuditMethod(ABC):
    """An audit method. Subclasses set every class attribute and implement `compute`."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    votes: ClassVar[bool] = False  # its unit scores vote in unit verdicts
    priority: ClassVar[int]  # lower runs first (and is cut last)
    default: ClassVar[bool] = True  # in the default method set
    column: ClassVar[int | None] = None  # report column position; None: priority
    # it reads the audit's attention pass (ctx.answer_attention), which also scores the full answer
    reads_attention: ClassVar[bool] = False
    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # an intermediate base without a name is not a method
            missing = [a for a in ("kind", "priority") if not hasattr(cls, a)]
            if missing:
                raise TypeError(f"{cls.__qualname__} must set {', '.join(missing)}")
            registry.register(cls)

    @classmethod
    def column_order(cls) -> int:
        return cls.priority if cls.column is None else cls.column

    @classmethod
    def settings_from(cls, config: AuditConfig) -> BaseModel:
        """`Settings` validated from `config.method_settings[name]` (unset ones default); a bad
        value is a CaseError naming `method_settings.<name>.<setting>`."""
        try:
            return cls.Settings.model_validate(config.method_settings.get(cls.name, {}))
        except ValidationError as err:
            first = err.errors()[0]
            loc = [part for part in first["loc"]  # union branch tags are not fields
                   if isinstance(part, int) or str(part).isidentifier()]
            raise CaseError(field_path(("method_settings", cls.name, *loc)),
                            first["msg"].removeprefix("Value error, ")) from None

    def settings(self, ctx: AuditContext) -> Any:
        """This method's settings for the audit's config."""
        return self.settings_from(ctx.config)

    def applies(self, ctx: AuditContext) -> bool:
        """Whether the method has anything to do on this case."""
        return True

    def plan(self, ctx: AuditContext) -> list[Probe]:
        """The score probes `compute` will ask for, so the runner can score them up front,
        shared with the other methods. Empty for methods that score nothing."""
        return []

    def unit_provenance(self, result: MethodResult, unit_id: str) -> dict[str, float | None]:
        """A provenance method's entries in one unit's `provenance` dict."""
        return {self.name: result.scores.get(unit_id)}

    def claim_scores(self, ctx: AuditContext, result: MethodResult,
                     token_span: tuple[int, int]) -> Outcome | None:
        """Scores per unit for the answer tokens [start, end) alone (one claim), from what
        `compute` already scored: never a forward pass (read `ctx.cached`, not `ctx.score`).
        None: the method has no per-claim view."""
        return None

    @abstractmethod
    def compute(self, ctx: AuditContext, settings: Any) -> Outcome:
        """Score the units. May raise BudgetExhausted: `run` turns that into a cut."""

    @final
    def run(self, ctx: AuditContext) -> MethodResult:
        started = time.perf_counter()
        passes_before = ctx.passes
        settings = self.settings(ctx)
        try:
            outcome = self.compute(ctx, settings)
        except BudgetExhausted as stop:
            outcome = Outcome(dict.fromkeys(ctx.unit_ids), cut=stop.reason)
        return MethodResult(method=self.name, scores=outcome.scores, extras=outcome.extras,
                            forward_passes=ctx.passes - passes_before,
                            seconds=time.perf_counter() - started, cut=outcome.cut,
                            detail=outcome.detail)
