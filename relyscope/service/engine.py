"""The loaded model and what the service asks of it, behind public relyscope APIs only.

`audit` and `ask` run on the model thread (see jobs.py). `count_tokens` runs on the one
admission thread, with its own copy of the tokenizer, because a fast tokenizer must not be
used from two threads at once.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig
from relyscope.report_model import Report

if TYPE_CHECKING:
    from relyscope.models import CausalLM
    from relyscope.models.loading import ModelOptions

Loader = Callable[[], "CausalLM"]
PipelineFactory = Callable[["CausalLM"], Any]


@dataclass
class AskResult:
    case: Case
    report: Report | None
    timings: dict[str, float]


class Engine:
    """One model (not thread safe: call `audit`/`ask` from the model thread only)."""

    def __init__(self, lm: CausalLM, pipeline: Any = None,
                 pipeline_unavailable: str | None = "the server was started without --index"
                 ) -> None:
        self.lm = lm
        self.pipeline = pipeline
        self.pipeline_unavailable = None if pipeline is not None else pipeline_unavailable
        self._admission_tokenizer = copy.deepcopy(lm.tokenizer)

    @classmethod
    def load(cls, model: ModelOptions | str | None = None, index: str | None = None,
             loader: Loader | None = None, pipeline: PipelineFactory | None = None) -> Engine:
        """Load the model (and the pipeline when an index is given); slow, so off the loop.

        `model`: `ModelOptions`, or a model folder (None: the packaged model on the CPU);
        `loader()` replaces loading it. `pipeline(lm)` builds any object with
        relyscope.pipeline.Pipeline's `ask`, for embedders that bring their own retriever
        instead of a FAISS index folder.
        """
        from relyscope.models.loading import ModelOptions  # torch: once the port is open

        lm = loader() if loader is not None else ModelOptions.of(model).load()
        lm.calibrate()  # a cost per token, so the first deadline-bound audit is sized too
        # the audit methods (seconds of imports on a loaded machine) load now, not inside the
        # first request's deadline
        from relyscope.audits.registry import load_builtins

        load_builtins()
        if pipeline is not None:
            return cls(lm, pipeline(lm))
        if index is None:
            return cls(lm)
        try:
            from relyscope.pipeline import Pipeline
            from relyscope.retrievers import FaissRetriever
        except ImportError as err:
            return cls(lm, pipeline_unavailable=f"the pipeline is not installed here ({err})")
        return cls(lm, Pipeline(FaissRetriever.load(index), lm))

    @property
    def model_info(self) -> dict[str, Any]:
        info = self.lm.info
        return {"id": info.id, "revision": info.revision, "max_positions": info.max_positions}

    # -- admission (event loop) ---------------------------------------------------------------

    def count_tokens(self, case: Case, config: AuditConfig) -> int:
        """Tokens of the full prompt plus the answer (or the generation budget without one)."""
        from relyscope.models import Renderer

        renderer = Renderer(self._admission_tokenizer, case, granularity=config.granularity,
                            tool_mode=config.tool_mode)
        rendered = renderer.render(target=case.answer or " ")
        answer = len(rendered.target_ids) if case.answer else case.decoding.max_new_tokens
        return len(rendered.prompt_ids) + answer

    # -- model work (model thread) ----------------------------------------------------------------

    def audit(self, case: Case, config: AuditConfig, deadline: float | None,
              progress: Callable[[dict[str, Any]], None],
              cancelled: Callable[[], bool] | None = None) -> Report:
        """Audit on the model thread; `cancelled()` true stops it before its next model call
        (AuditCancelled), so the next job does not wait behind abandoned work."""
        from relyscope.audits import run_audit

        try:
            return run_audit(case, self.lm, config, progress=progress, deadline=deadline,
                             cancelled=cancelled)
        except CaseError as err:  # name the field as the request does
            raise CaseError(_in_case(err.field), err.message) from None

    def ask(self, query: str, top_k: int, tools: Sequence[tuple[str, str]],
            audit: AuditConfig | None, system: str | None, *, deadline: float | None = None,
            cancelled: Callable[[], bool] | None = None) -> AskResult:
        """Ask the pipeline on the model thread; `deadline` and `cancelled` reach its audit as
        they do `audit`'s (when the pipeline's `ask` takes them: an embedder's own may not)."""
        if self.pipeline is None:
            raise RuntimeError(self.pipeline_unavailable or "no pipeline")
        calls = [(name, _json_arguments(i, arguments)) for i, (name, arguments)
                 in enumerate(tools)]
        options: dict[str, Any] = {"audit": audit}
        accepted = _keywords(self.pipeline.ask)
        for name, value in (("deadline", deadline), ("cancelled", cancelled)):
            if value is not None and (accepted is None or name in accepted):
                options[name] = value
        if system is not None:
            options["system"] = system
        if calls:  # only then: the pipeline's tool selection is optional
            options["tool_calls"] = calls
        result = self.pipeline.ask(query, top_k, **options)
        return AskResult(case=result.case, report=result.report,
                         timings=dict(getattr(result, "timings", {}) or {}))


def _keywords(fn: Callable[..., Any]) -> set[str] | None:
    """The keyword arguments `fn` takes; None when it takes any (**kwargs)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _in_case(field: str) -> str:
    return f"case.{field}" if field else "case"


def _json_arguments(index: int, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise CaseError(f"tools[{index}].arguments", f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise CaseError(f"tools[{index}].arguments", "must be a JSON object")
    return value
