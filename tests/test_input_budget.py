"""One input budget: bytes before reading, characters before tokenising, tokens before the model.

The CLI and the service refuse the same over-budget case with the same message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from service_support import bad_request_field, running_server

from relyscope.audits import run_audit
from relyscope.case import Case, CaseError, iter_cases, load_case
from relyscope.config import AuditConfig
from relyscope.limits import (
    MAX_CASE_BYTES_ENV,
    InputBudget,
    OverBudget,
    check_chars,
    check_tokens,
)
from relyscope.protocol.convert import case_to_proto, config_to_proto

ROOT = Path(__file__).resolve().parents[1]
LONG_TEXT = ("The Zelk guild keeps ledgers of copper and salt. " * 4100)[:200_000]


def long_case(answer: str | None = None) -> Case:
    data = {"id": "long", "query": "Who keeps ledgers?",
            "sources": [{"id": "huge", "text": LONG_TEXT}]}
    if answer is not None:
        data["answer"] = answer
    return Case.from_dict(data)


# -- the budget itself -----------------------------------------------------------------------


def test_characters_are_refused_naming_the_largest_field() -> None:
    case = Case.from_dict({"id": "c", "query": "q?", "sources": [
        {"id": "a", "text": "short"}, {"id": "b", "text": "x" * 5000}]})
    check_chars(case, budget=InputBudget(max_chars=5100))  # within
    with pytest.raises(OverBudget) as err:
        check_chars(case, budget=InputBudget(max_chars=5000))
    assert isinstance(err.value, CaseError)
    assert "5007 characters, over the input budget" in err.value.message
    assert "largest field: sources[1].text, 5000 characters" in err.value.message


def test_the_character_limit_follows_a_small_context() -> None:
    budget = InputBudget(max_chars=1_000_000, chars_per_token=32)
    assert budget.char_limit(8192) == (262144, "the model's context of 8192 tokens x 32 "
                                                "characters a token")
    assert budget.char_limit(None)[0] == 1_000_000
    assert budget.char_limit(10**6)[0] == 1_000_000


def test_tokens_over_the_limit_are_refused_and_at_the_limit_are_not() -> None:
    case = long_case("An answer.")
    check_tokens(case, 8192, 8192)
    with pytest.raises(OverBudget, match="is 8193 tokens .* over the model's context of 8192"):
        check_tokens(case, 8193, 8192)


def test_a_case_file_over_the_byte_budget_is_refused_before_reading(tmp_path, monkeypatch
                                                                    ) -> None:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(long_case("x").to_dict()))
    assert load_case(path).id == "long"
    monkeypatch.setenv(MAX_CASE_BYTES_ENV, "1000")
    with pytest.raises(OverBudget) as err:
        load_case(path)
    assert err.value.record == str(path)
    assert "over the input budget of 1000 bytes" in err.value.message


def test_a_long_jsonl_line_is_refused_at_its_record_after_the_good_ones(tmp_path, monkeypatch
                                                                       ) -> None:
    small = json.dumps({"id": "ok", "query": "q?", "sources": [{"id": "a", "text": "t"}]})
    path = tmp_path / "cases.jsonl"
    path.write_text(small + "\n\n" + json.dumps(long_case().to_dict()) + "\n" + small + "\n")
    monkeypatch.setenv(MAX_CASE_BYTES_ENV, "4096")
    cases = iter_cases(path)
    assert next(cases).id == "ok"
    with pytest.raises(OverBudget) as err:
        next(cases)
    assert err.value.record == f"{path}:3"


def test_case_files_that_are_not_utf8_are_a_named_error(tmp_path) -> None:
    path = tmp_path / "case.json"
    path.write_bytes(b'{"id": "c", "query": "caf\xe9?"}')
    with pytest.raises(CaseError, match="not valid UTF-8"):
        load_case(path)
    lines = tmp_path / "cases.jsonl"
    lines.write_bytes(b'{"id": "c", "query": "caf\xe9?"}\n')
    with pytest.raises(CaseError, match="not valid UTF-8") as err:
        list(iter_cases(lines))
    assert err.value.record == f"{lines}:1"


def test_a_bad_budget_setting_names_the_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(MAX_CASE_BYTES_ENV, "lots")
    with pytest.raises(CaseError) as err:
        InputBudget.from_env()
    assert err.value.field == MAX_CASE_BYTES_ENV


# -- the library, the CLI and the service ------------------------------------------------------


@pytest.mark.real_model
def test_the_library_refuses_before_generating_an_answer(real_lm) -> None:
    passes = real_lm.cost.forward_passes
    started = time.monotonic()
    with pytest.raises(OverBudget, match="over the model's context of 8192 tokens"):
        run_audit(long_case(), real_lm, AuditConfig(methods=("attention",)))
    assert time.monotonic() - started < 10
    assert real_lm.cost.forward_passes == passes  # no model call at all


@pytest.mark.real_model
def test_cli_refuses_a_200k_character_source_without_an_answer_within_15s(tmp_path) -> None:
    """15 s of the process's own CPU time (imports, model load, one tokenisation): wall time
    on the shared test machine depends on its other load, so it is bounded loosely; before
    the budget, generation over the whole prompt ran for minutes."""
    path = tmp_path / "long.json"
    path.write_text(json.dumps(long_case().to_dict()))
    probe = ("import resource, subprocess, sys, json, time\n"
             "started = time.monotonic()\n"
             "rc = subprocess.run([sys.executable, '-m', 'relyscope', 'audit', sys.argv[1],"
             " '--methods', 'attention'], capture_output=True, text=True)\n"
             "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
             "print(json.dumps({'rc': rc.returncode, 'err': rc.stderr,"
             " 'cpu': use.ru_utime + use.ru_stime, 'wall': time.monotonic() - started}))\n")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=ROOT, text=True,
                         capture_output=True, timeout=180, check=True,
                         env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    result = json.loads(out.stdout)
    assert result["rc"] == 2, result["err"][-2000:]
    assert result["cpu"] < 15, result
    assert result["wall"] < 60, result
    assert "tokens (prompt + answer), over the model's context of 8192" in result["err"]
    assert "Traceback" not in result["err"]


def test_cli_refuses_a_100mb_case_file_in_under_2gb(tmp_path) -> None:
    path = tmp_path / "big.json"
    with path.open("w") as handle:  # a valid 100 MB case: one huge source
        handle.write('{"id": "big", "query": "q?", "sources": [{"id": "a", "text": "')
        chunk = "salt " * 200_000
        for _ in range(100):
            handle.write(chunk)
        handle.write('"}]}')
    assert path.stat().st_size > 100 * 10**6
    probe = ("import resource, subprocess, sys, json\n"
             "rc = subprocess.run([sys.executable, '-m', 'relyscope', 'audit', sys.argv[1]],"
             " capture_output=True, text=True)\n"
             "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
             "print(json.dumps({'rc': rc.returncode, 'peak': peak, 'err': rc.stderr}))\n")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=ROOT, text=True,
                         capture_output=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result["rc"] == 2, result["err"][-2000:]
    assert result["peak"] < 2 * 2**30, result["peak"]
    assert "over the input budget of" in result["err"]
    assert "Traceback" not in result["err"]
    assert time.monotonic() - started < 60


@pytest.mark.real_model
def test_cli_and_service_refuse_with_the_same_message(real_lm, tmp_path) -> None:
    from relyscope.v1 import audit_pb2 as pb
    from relyscope.v1 import audit_pb2_grpc

    case = long_case("The guild keeps them.")
    with pytest.raises(OverBudget) as library:
        run_audit(case, real_lm, AuditConfig(methods=("attention",)))
    with running_server(real_lm) as server, \
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        request = pb.AuditRequest(id="r", case=case_to_proto(case),
                                  config=config_to_proto(AuditConfig(methods=("attention",))))
        with pytest.raises(grpc.RpcError) as remote:
            stub.Audit(request, timeout=60)
    assert remote.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert bad_request_field(remote.value) == "case"
    assert remote.value.details() == f"case: {library.value.message}"
