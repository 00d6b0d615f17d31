"""PipelineService.Ask over a real socket with the real model and relyscope.pipeline.Pipeline.

The pipeline is imported at module level on purpose: a broken pipeline fails this file."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from service_support import SOURCES, running_server

from relyscope.case import Source
from relyscope.client import Client, ServiceCallError
from relyscope.config import AuditConfig
from relyscope.pipeline import Pipeline

pytestmark = pytest.mark.real_model


class WordOverlapRetriever:
    """Ranks the test passages by words shared with the query."""

    def retrieve(self, query: str, top_k: int = 5) -> list[Source]:
        words = set(re.findall(r"\w+", query.lower()))
        scored = sorted(((len(words & set(re.findall(r"\w+", text.lower()))), i, text)
                         for i, text in SOURCES), key=lambda s: (-s[0], s[1]))
        return [Source(id=i, text=text, retrieval_score=float(score))
                for score, i, text in scored[:top_k]]


def make_pipeline(lm: Any) -> Pipeline:
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
