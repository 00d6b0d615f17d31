"""Audits by proxy: log records whose answer came from another model than the audit model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ingest_logs as logs
import pytest

from relyscope.audits import run_audit
from relyscope.audits.proxy import agreement, is_proxy, key_terms, model_key
from relyscope.config import AuditConfig, Thresholds
from relyscope.ingest import read_logs
from relyscope.models import CausalLM

CHEAP = AuditConfig(methods=("loo",))


def test_model_names_compare_loosely() -> None:
    assert model_key("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m-instruct"
    assert model_key("/models/SmolLM2-135M-Instruct.gguf") == "smollm2-135m-instruct"
    assert is_proxy("gpt-4o-mini", ("smollm2-135m-instruct",))
    assert not is_proxy("HuggingFaceTB/SmolLM2-135M-Instruct", ("smollm2-135m-instruct",))
    assert not is_proxy(None, ("smollm2-135m-instruct",))
    assert not is_proxy("  ", ("smollm2-135m-instruct",))


def test_key_content_agreement() -> None:
    answer = "The Zelk guild was founded by Anna Roth in 1821."
    assert key_terms(answer) == ["zelk", "anna", "roth", "1821"]
    share, _, matched = agreement(answer, "Anna Roth founded it in 1821.")
    assert share == 0.75 and matched == ["anna", "roth", "1821"]
    assert agreement(answer, "Nobody knows.")[0] == 0.0
    assert key_terms("it rained heavily yesterday") == ["rained", "heavily", "yesterday"]
    assert agreement("a b", "c")[0] is None  # no key content: no verdict on agreement


def _patched_langsmith(path: Path, model: str) -> Path:
    runs = [json.loads(line) for line in path.read_text().splitlines()]

    def tag(run: dict[str, Any]) -> None:
        if run.get("run_type") == "llm":
            run.setdefault("extra", {}).setdefault("metadata", {})["ls_model_name"] = model
        for child in run.get("child_runs") or []:
            tag(child)
    for run in runs:
        tag(run)
    return logs.write_jsonl(path, runs)


def test_log_readers_fill_the_answering_model(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    openai_path = logs.write_jsonl(tmp_path / "openai.jsonl", [logs.openai_record()])
    otel = logs.write_otel_genai(tmp_path / "otel.json", monkeypatch)
    openinference = logs.write_openinference(tmp_path / "oi.json")
    langsmith = _patched_langsmith(logs.write_langsmith(tmp_path / "ls.jsonl"), "gpt-4o-mini")
    found = {}
    for path in (openai_path, otel, openinference, langsmith):
        (record,) = read_logs(path)
        assert record.error is None, record.error
        found[record.format] = record.case.model
    assert found["openai"] == "gpt-4o-mini"  # the record's `model`
    assert found["otel_genai"] == "gpt-4o-mini"  # gen_ai.request.model
    assert found["langsmith"] == "gpt-4o-mini"  # metadata.ls_model_name
    # the fake LangChain chat model has no model name; the reader keeps what the span says
    assert "openinference" in found


@pytest.mark.real_model
def test_another_models_answer_is_a_proxy_audit(tmp_path: Path, real_lm: CausalLM) -> None:
    path = logs.write_jsonl(tmp_path / "openai.jsonl", [
        logs.openai_record("from-gpt"),
        logs.openai_record("from-smollm", model="HuggingFaceTB/SmolLM2-135M-Instruct")])
    records = {r.record_id: r for r in read_logs(path)}
    other = run_audit(records["from-gpt"].case, real_lm, CHEAP)
    proxy = other.proxy
    assert proxy is not None
    assert proxy["answering_model"] == "gpt-4o-mini"
    assert proxy["audit_model"] == real_lm.info.id
    assert proxy["logprob_per_token"] == pytest.approx(other.answer_logprob
                                                       / other.answer_tokens)
    assert proxy["proxy_answer"] and 0.0 <= proxy["agreement"] <= 1.0
    assert proxy["agrees"] == (proxy["agreement"] >= Thresholds().proxy_agreement)
    assert proxy["fit"] in ("ok", "low")
    assert any(w.startswith("audit by proxy: the answer was written by gpt-4o-mini")
               for w in other.warnings)
    assert other.cost["forward_passes"] >= 1 + len(other.units)  # the greedy answer counted
    assert Path(tmp_path / "r.json").write_text(json.dumps(other.to_dict()))  # JSON-able

    same = run_audit(records["from-smollm"].case, real_lm, CHEAP)
    assert same.proxy is None
    assert not any("proxy" in w for w in same.warnings)

    # a fit threshold the proxy cannot meet turns into a warning naming the fit
    strict = AuditConfig(methods=("loo",), thresholds={"proxy_logprob_per_token": 0.0})
    low = run_audit(records["from-gpt"].case, real_lm, strict)
    assert low.proxy is not None and low.proxy["fit"] == "low"
    assert any("proxy fit too low" in w and "mean log-prob per answer token" in w
               for w in low.warnings)
    if proxy["fit"] == "ok":
        assert not any("proxy fit too low" in w for w in other.warnings)


def test_the_proxy_block_and_its_thresholds_cross_the_wire() -> None:
    from relyscope.protocol.convert import (
        config_from_proto,
        config_to_proto,
        report_from_proto,
        report_to_proto,
    )
    from relyscope.report_model import Report

    config = AuditConfig(thresholds={"proxy_logprob_per_token": -3.5, "proxy_agreement": 0.25})
    assert config_from_proto(config_to_proto(config)) == config
    block = {"answering_model": "gpt-4o-mini", "audit_model": "smollm2-135m-instruct",
             "logprob_per_token": -1.25, "answer_tokens": 20, "agreement": 0.5,
             "agrees": True, "key_terms": ["zelk"], "fit": "ok", "proxy_answer": None}
    report = Report(case_id="c", answer="a", answer_logprob=-1.0, answer_tokens=2, proxy=block)
    back = report_from_proto(report_to_proto(report))
    assert back.proxy == block and isinstance(back.proxy["answer_tokens"], int)
    plain = Report(case_id="c", answer="a", answer_logprob=-1.0, answer_tokens=2)
    assert report_from_proto(report_to_proto(plain)).proxy is None
