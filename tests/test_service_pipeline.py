"""PipelineService.Ask over a real socket with the real model.

Uses relyscope.pipeline.Pipeline when this checkout has it; otherwise a stand-in with the
same documented interface (`ask(query, top_k, system=None, audit=None, *, tool_calls=None)`
returning an object with `.case`, `.report`, `.timings`), so the servicer is tested either way.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from service_support import SOURCES, SYSTEM, running_server

from relyscope.audits import run_audit
from relyscope.case import Case, Source
from relyscope.client import Client, ServiceCallError
from relyscope.config import AuditConfig

pytestmark = pytest.mark.real_model


class WordOverlapRetriever:
    """Ranks the test passages by words shared with the query."""

    def retrieve(self, query: str, top_k: int = 5) -> list[Source]:
        words = set(re.findall(r"\w+", query.lower()))
        scored = sorted(((len(words & set(re.findall(r"\w+", text.lower()))), i, text)
                         for i, text in SOURCES), key=lambda s: (-s[0], s[1]))
        return [Source(id=i, text=text, retrieval_score=float(score))
                for score, i, text in scored[:top_k]]


class StandInPipeline:
    """relyscope.pipeline.Pipeline's interface, for checkouts without that module."""

    def __init__(self, retriever: Any, lm: Any) -> None:
        self.retriever, self.lm = retriever, lm

    def ask(self, query: str, top_k: int = 5, system: str | None = None,
            audit: AuditConfig | None = None, *, tool_calls: Any = None) -> SimpleNamespace:
        if tool_calls:
            raise ValueError(f"tool_calls[0]: unknown tool {tool_calls[0][0]!r}")
        sources = self.retriever.retrieve(query, top_k)
        case = self.lm.answer(Case.from_dict({
            "id": "ask-1", "system": system or SYSTEM, "query": query,
            "sources": [s.model_dump() for s in sources],
            "decoding": {"max_new_tokens": 24}}))
        report = run_audit(case, self.lm, audit) if audit is not None else None
        return SimpleNamespace(case=case, report=report, timings={"retrieve_s": 0.0})


def make_pipeline(lm: Any) -> Any:
    try:
        from relyscope.pipeline import Pipeline
    except ImportError:
        return StandInPipeline(WordOverlapRetriever(), lm)
    return Pipeline(WordOverlapRetriever(), lm)


def test_ask_retrieves_answers_and_audits_inline(real_lm):
    with running_server(real_lm, pipeline=make_pipeline) as server, \
            Client(f"127.0.0.1:{server.port}", timeout=300) as client:
        assert client.health("relyscope.v1.PipelineService") == "SERVING"
        result = client.ask("Who founded the Zelk guild?", top_k=3,
                            audit=AuditConfig(methods=("loo",)), request_id="ask-req")
        assert [s.id for s in result.case.sources][:1] == ["d1"]
        assert len(result.case.sources) == 3
        assert result.case.answer and result.case.answer.strip()
        assert result.report is not None and result.report.case_id == result.case.id
        assert {u.id for u in result.report.units} == {s.id for s in result.case.sources}
        assert result.report.answer == result.case.answer
        assert "retrieve_s" in result.timings

        for kwargs, field in (({"tools": [("get_weather", "{city: Mirel")]},
                               "tools[0].arguments"),
                              ({"tools": [("no_such_tool", "{}")]}, "tool_calls[0]")):
            with pytest.raises(ServiceCallError) as err:
                client.ask("Who founded the Zelk guild?", **kwargs)
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.field == field
        with pytest.raises(ServiceCallError) as err:
            client.ask("   ")
        assert (err.value.code, err.value.field) == (grpc.StatusCode.INVALID_ARGUMENT, "query")
