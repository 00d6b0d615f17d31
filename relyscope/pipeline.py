"""The retrieval/tool pipeline relyscope wraps: retrieve, run tools, answer, audit (optional).

`Pipeline(retriever, lm, tools).ask(query)` retrieves the top-k passages, runs the tools the
caller selected, generates the answer greedily with the local model and returns the `Case`
(ready to audit) plus, when `audit` is given, the audit `Report`.

Tool use is deterministic here: the packaged SmolLM2-135M cannot emit tool calls, so the
pipeline does not ask the model which tools to call. The caller chooses, either per question
(``ask(..., tool_calls=[("get_weather", {"city": "Brisk"})])``) or with a router callable given
to the pipeline (``router(query, sources) -> [(name, arguments), ...]``). The calls run before
answering and their outputs go into the prompt as tool results. For a model that chooses its
own tools, use `relyscope.agents.AgentExecutor`, which returns the same kind of Case.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relyscope.agents.registry import ToolRegistry
from relyscope.case import Case, Source, ToolCall
from relyscope.config import AuditConfig
from relyscope.errors import AuditCancelled, ScoringStopped
from relyscope.report_model import Report
from relyscope.retrievers.base import Retriever

if TYPE_CHECKING:
    from relyscope.models import CausalLM

DEFAULT_SYSTEM = "Answer the question in one sentence using the context."

ToolSelection = Sequence[tuple[str, Mapping[str, Any] | str]]
Router = Callable[[str, list[Source]], ToolSelection]


@dataclass
class PipelineResult:
    case: Case
    report: Report | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return self.case.answer or ""

    @property
    def sources(self) -> tuple[Source, ...]:
        return self.case.sources

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.case.tool_calls


class Pipeline:
    """Retriever + local model + optional tools; see the module doc for how tools are chosen."""

    def __init__(self, retriever: Retriever | None, lm: CausalLM,
                 tools: ToolRegistry | Sequence[Callable[..., Any]] | None = None, *,
                 router: Router | None = None, system: str | None = DEFAULT_SYSTEM,
                 max_new_tokens: int = 64) -> None:
        self.retriever = retriever
        self.lm = lm
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools or ())
        self.router = router
        self.system = system
        self.max_new_tokens = max_new_tokens

    def ask(self, query: str, top_k: int = 5, system: str | None = None,
            audit: AuditConfig | None = None, *, tool_calls: ToolSelection | None = None,
            case_id: str | None = None, deadline: float | None = None,
            cancelled: Callable[[], bool] | None = None) -> PipelineResult:
        """Answer `query`; with `audit`, also audit the answer (needs relyscope.audits).
        `deadline` (time.monotonic()) and `cancelled` go to the audit as in run_audit;
        `cancelled()` also stops the answer's generation (AuditCancelled)."""
        if not query.strip():
            raise ValueError("query: must not be empty")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        sources = self.retriever.retrieve(query, top_k) if self.retriever and top_k > 0 else []
        timings["retrieve_s"] = time.perf_counter() - started

        started = time.perf_counter()
        selection, how = self._select_tools(query, sources, tool_calls)
        calls = self._run_tools(selection)
        timings["tools_s"] = time.perf_counter() - started

        case = Case.from_dict({
            "id": case_id or _case_id(query, sources, calls),
            "system": system if system is not None else self.system,
            "query": query,
            "sources": [s.model_dump() for s in sources],
            "tool_calls": [c.model_dump() for c in calls],
            "model": self.lm.info.id,
            "decoding": {"max_new_tokens": self.max_new_tokens},
            "metadata": {"pipeline": {"top_k": top_k, "tool_selection": how,
                                      "retriever": _describe(self.retriever)}},
        })
        started = time.perf_counter()
        case = self._answer(case, cancelled)
        timings["generate_s"] = time.perf_counter() - started

        report = None
        if audit is not None:
            from relyscope.audits.runner import run_audit  # lazy: loads the audit methods

            started = time.perf_counter()
            report = run_audit(case, self.lm, audit, deadline=deadline, cancelled=cancelled)
            timings["audit_s"] = time.perf_counter() - started
        return PipelineResult(case=case, report=report, timings=timings)

    def _answer(self, case: Case, cancelled: Callable[[], bool] | None) -> Case:
        """The model's answer; a cancellation stops it between tokens (AuditCancelled)."""
        if cancelled is None:
            return self.lm.answer(case)

        def stop(_seconds: float) -> str | None:
            return "cancelled" if cancelled() else None

        try:
            with self.lm.stopping(stop):
                return self.lm.answer(case)
        except ScoringStopped:
            raise AuditCancelled("the question was cancelled") from None

    def _select_tools(self, query: str, sources: list[Source],
                      explicit: ToolSelection | None) -> tuple[ToolSelection, str]:
        if explicit is not None:
            return explicit, "explicit"
        if self.router is not None:
            return self.router(query, sources), "router"
        return (), "none"

    def _run_tools(self, selection: ToolSelection) -> list[ToolCall]:
        calls = []
        for number, (name, arguments) in enumerate(selection, 1):
            if name not in self.tools:
                known = ", ".join(t.name for t in self.tools) or "none registered"
                raise ValueError(f"tool_calls[{number - 1}]: unknown tool {name!r} "
                                 f"(known: {known})")
            text = arguments if isinstance(arguments, str) else json.dumps(
                dict(arguments), ensure_ascii=False)
            result = self.tools.call(name, text)
            calls.append(ToolCall(id=f"call_{number}", name=name, arguments=text,
                                  output=result.output, status=result.status))
        return calls


def _describe(retriever: Retriever | None) -> dict[str, Any] | None:
    if retriever is None:
        return None
    describe = getattr(retriever, "describe", None)
    return describe() if callable(describe) else {"kind": type(retriever).__name__}


def _case_id(query: str, sources: Sequence[Source], calls: Sequence[ToolCall]) -> str:
    key = json.dumps([query, [s.id for s in sources], [(c.name, c.arguments) for c in calls]])
    return "ask-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
