"""Pipeline.ask end to end on the real packaged model and the demo corpus."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.pipeline import DEFAULT_SYSTEM, Pipeline
from relyscope.retrievers import FaissRetriever

pytestmark = pytest.mark.real_model

DEMO = Path(str(resources.files("relyscope") / "data" / "demo_corpus.jsonl"))


def ferry_delay(port: str) -> str:
    """Today's delay of the ferry leaving a port."""
    if port != "Mirel":
        raise LookupError(f"no ferry leaves {port}")
    return "The Saint Odile is delayed by 35 minutes today."


def harbour_webcam(port: str) -> str:
    """A still image from the harbour camera."""
    raise TimeoutError("camera offline")


@pytest.fixture(scope="module")
def demo() -> FaissRetriever:
    return FaissRetriever.build(DEMO, progress=False)


@pytest.fixture(scope="module")
def pipeline(demo, real_lm) -> Pipeline:
    return Pipeline(demo, real_lm, [ferry_delay, harbour_webcam])


def test_ask_retrieves_from_the_demo_corpus_and_generates_the_answer(pipeline, real_lm):
    result = pipeline.ask("Who designed the Kestrel Point lighthouse?", top_k=3)
    case = result.case
    assert [s.id for s in result.sources][0] == "kestrel-lighthouse#c0"
    assert len(result.sources) == 3 and all(s.retrieval_score for s in result.sources)
    assert "Marrowby" in result.answer
    assert case.system == DEFAULT_SYSTEM and case.model == real_lm.info.id
    assert case.tool_calls == () and result.report is None
    provenance = case.metadata["pipeline"]
    assert provenance["retriever"]["index"]["type"] == "flat"
    assert provenance["tool_selection"] == "none"
    assert set(result.timings) == {"retrieve_s", "tools_s", "generate_s"}
    assert Case.from_dict(case.to_dict()) == case  # a case file, ready to audit


def test_router_selected_tools_run_before_answering_and_errors_are_recorded(demo, real_lm):
    seen = []

    def router(query, sources):
        seen.extend(sources)  # the router sees what was retrieved
        return [("ferry_delay", {"port": "Mirel"}), ("harbour_webcam", {"port": "Mirel"})]

    pipeline = Pipeline(demo, real_lm, [ferry_delay, harbour_webcam], router=router)
    result = pipeline.ask("How late is the ferry from Mirel today?", top_k=2,
                          system="Answer in one sentence using the context and tool results.")
    delay, cam = result.tool_calls
    assert (delay.id, delay.status, delay.arguments) == ("call_1", "ok", '{"port": "Mirel"}')
    assert (cam.id, cam.status, cam.output) == ("call_2", "error",
                                                "TimeoutError: camera offline")
    assert "35 minutes" in result.answer
    assert result.case.metadata["pipeline"]["tool_selection"] == "router"
    assert tuple(seen) == result.sources and len(seen) == 2


def test_explicit_tool_selection_rejects_unknown_tools(pipeline):
    with pytest.raises(ValueError, match=r"tool_calls\[0\]: unknown tool 'tides'"):
        pipeline.ask("Tides?", tool_calls=[("tides", {})])
    with pytest.raises(ValueError, match="query"):
        pipeline.ask("   ")


def test_ask_command_prints_answer_and_sources(tmp_path, capsys):
    import argparse

    from relyscope.cli.retrieval import add_commands

    parser = argparse.ArgumentParser(prog="relyscope")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["index", str(DEMO), "--out", str(tmp_path / "idx")])
    assert args.func(args) == 0
    args = parser.parse_args(["ask", str(tmp_path / "idx"),
                              "How long is the ferry crossing from Mirel to Hask?", "--top-k", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "2 hours and 40 minutes" in out and "ferry-service#c0" in out


def test_ask_with_audit_returns_a_report(pipeline):
    result = pipeline.ask("Who founded the Zelk guild?", top_k=3,
                          audit=AuditConfig(methods=("loo",)))
    assert result.report is not None and result.report.case_id == result.case.id
    assert result.report.answer == result.answer
    # the small model's answer also quotes a third passage (Petra Olund), which LOO then
    # rightly scores as relied too; the founder's chunk must be relied, the colour chunk not
    assert "Anna Roth" in result.answer
    assert result.report.unit("zelk-guild#c0").reliance["loo"] > 10
    assert result.report.ranking("loo").index("zelk-guild#c0") < 2
    assert result.report.unit("zelk-blue-glass#c0").reliance["loo"] < 2
    assert "audit_s" in result.timings
