"""The contract: committed stubs match the .proto, and conversion loses nothing."""

from __future__ import annotations

import json

import pytest
from service_support import FAST, five_source_case

from relyscope.audits import run_audit
from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig, Thresholds
from relyscope.protocol.convert import (
    case_from_proto,
    case_to_proto,
    config_from_proto,
    config_to_proto,
    event_to_proto,
    report_from_proto,
    report_to_proto,
)
from relyscope.report_model import Report
from relyscope.v1 import audit_pb2 as pb
from tools.gen_proto import PROTO_ROOT, STUBS, proto_files, stale_files


def test_the_committed_stubs_are_what_the_proto_generates():
    assert [p.name for p in proto_files()] == ["audit.proto", "pipeline.proto"]
    stale = stale_files()
    assert stale == [], f"regenerate with `python -m tools.gen_proto`: {stale}"


def test_a_changed_proto_is_detected_as_stale(tmp_path):
    import shutil

    root = tmp_path / "proto"
    shutil.copytree(PROTO_ROOT, root)
    audit = root / "relyscope" / "v1" / "audit.proto"
    audit.write_text(audit.read_text().replace("  string field = 4;",
                                               "  string field = 4;\n  string hint = 5;"))
    assert "audit_pb2.py" in stale_files(STUBS, root)


def test_a_case_survives_the_round_trip_key_for_key():
    case = Case.from_dict({
        "id": "c1", "system": "sys", "query": "q?", "answer": "a.", "model": "m",
        "decoding": {"max_new_tokens": 12},
        "sources": [{"id": "s1", "text": "t", "title": "T", "retrieval_score": 0.5,
                     "metadata": {"url": "http://x", "rank": 1, "tags": ["a", None, 2.5]}},
                    {"id": "s2", "text": "u"}],
        "tool_calls": [{"id": "call_1", "name": "f", "arguments": "{not json",
                        "output": "o", "status": "error", "counterfactual": "c"},
                       {"id": "call_2", "name": "g", "arguments": ""}],
        "metadata": {"nested": {"deep": [1, {"x": True}]}}})
    back = case_from_proto(pb.Case.FromString(case_to_proto(case).SerializeToString()))
    assert back.to_dict() == case.to_dict()
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(case.to_dict(),
                                                                    sort_keys=True)


def test_unset_optional_fields_take_the_model_defaults():
    case = case_from_proto(pb.Case(id="c", query="q", sources=[pb.Source(id="s", text="t")],
                                   tool_calls=[pb.ToolCall(id="t1", name="f")]))
    assert case.answer is None and case.system is None
    assert case.tool_calls[0].arguments == "{}" and case.tool_calls[0].status == "ok"
    assert case.decoding.max_new_tokens == 64
    assert config_from_proto(pb.AuditConfig()) == AuditConfig()


def test_case_errors_name_the_same_field_as_for_json():
    message = case_to_proto(five_source_case())
    message.sources[3].id = "d1"
    with pytest.raises(CaseError) as err:
        case_from_proto(message)
    assert err.value.field == "sources[3].id"
    with pytest.raises(CaseError) as err:
        Case.from_dict(five_source_case().to_dict() | {"sources": [
            s | {"id": "d1"} if i == 3 else s
            for i, s in enumerate(five_source_case().to_dict()["sources"])]})
    assert err.value.field == "sources[3].id"
    with pytest.raises(CaseError) as err:
        config_from_proto(pb.AuditConfig(thresholds=pb.Thresholds(relied_drop=1.0),
                                         granularity="paragraph"))
    assert err.value.field == "granularity"


def test_a_config_survives_the_round_trip():
    config = AuditConfig(methods=("loo", "tracing"), granularity="sentence", tool_mode="inline",
                         removal="placeholder", ablations=8, seed=7, max_forward_passes=100,
                         max_seconds=2.5, regenerate=True,
                         thresholds=Thresholds(relied_drop=1.5, unstable_spearman=0.2))
    assert config_from_proto(config_to_proto(config)) == config


@pytest.mark.real_model
def test_a_real_report_survives_the_round_trip(real_lm):
    report = run_audit(five_source_case(), real_lm, FAST)
    wire = pb.Report.FromString(report_to_proto(report).SerializeToString())
    back = report_from_proto(wire)
    assert back.to_dict() == report.to_dict()
    # counts stay integers through google.protobuf.Struct
    assert isinstance(back.cost["forward_passes"], int)
    assert isinstance(back.settings["config"]["seed"], int)
    assert back.settings["config"]["method_settings"]["loo"] == {
        "regenerate": False, "expand_drop": None, "max_expanded": None, "screen_top": None}
    assert back.unit("d1").reliance == report.unit("d1").reliance


def test_missing_scores_stay_missing_and_unknown_cost_keys_are_kept():
    report = Report(case_id="c", answer="a", answer_logprob=-1.0, answer_tokens=2,
                    units=[{"id": "u", "kind": "source",
                            "reliance": {"loo": None, "tools": 0.0}}],
                    cost={"forward_passes": 3, "per_method": {"loo": {"forward_passes": 2,
                                                                      "seconds": 0.1,
                                                                      "note": "x"}},
                          "gpu": "none"})
    back = report_from_proto(report_to_proto(report))
    assert back.unit("u").reliance == {"loo": None, "tools": 0.0}
    assert back.cost == report.cost


def test_a_failing_method_is_an_event_of_its_own():
    event = event_to_proto("r1", {"event": "method_failed", "method": "tracing",
                                  "error": "RuntimeError: boom"})
    assert event is not None and event.WhichOneof("event") == "method_failed"
    assert event.method_failed.error == "RuntimeError: boom" and event.id == "r1"
    assert event_to_proto("r1", {"event": "something_new"}) is None
