"""Property-based tests: whatever comes in, the answer is a value or a named error.

Case JSON (Case.from_dict), the proto conversion (bytes off the wire, then
relyscope.protocol.convert) and the log readers (relyscope.ingest.read_logs on generated
files) must give a value, a CaseError, or the service's INVALID_ARGUMENT, never another
exception. Examples are bounded and derandomized, so the run is the same every time.
"""

from __future__ import annotations

import ast
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relyscope.case import Case, CaseError
from relyscope.ingest import FORMATS, read_logs
from relyscope.protocol.convert import (
    case_from_proto,
    case_to_proto,
    config_from_proto,
    parameters_from_proto,
)
from relyscope.service.api.decoding import Undecodable, undecodable
from relyscope.service.errors import classify
from relyscope.v1 import audit_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
# derandomized: `make test` runs the same examples every time; a deeper hunt sets
# RELYSCOPE_PROPERTY_EXAMPLES (e.g. 5000)
BOUNDED = settings(max_examples=int(os.environ.get("RELYSCOPE_PROPERTY_EXAMPLES", "100")),
                   derandomize=True, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])


def _literals(folder: Path) -> list[str]:
    """Every short string literal of a package: the keys and values its readers look for."""
    found: set[str] = set()
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and 0 < len(node.value) < 48 and "\n" not in node.value:
                found.add(node.value)
    return sorted(found)


INGEST_WORDS = _literals(ROOT / "relyscope" / "ingest")
CASE_KEYS = ["id", "system", "query", "sources", "tool_calls", "answer", "model", "decoding",
             "metadata", "text", "title", "retrieval_score", "name", "arguments", "output",
             "status", "counterfactual", "max_new_tokens"]

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["ok", "error", "", " ", "{}", "[]", "{\"a\": 1}", "user",
                              "assistant", "tool", "system"]))


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """JSON-like values whose dict keys come mostly from `keys`."""
    key = st.sampled_from(keys) | st.text(max_size=6)
    return st.recursive(
        scalars | st.sampled_from(keys),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(key, inner, max_size=6),
        max_leaves=12)


# -- case JSON -------------------------------------------------------------------------------


def _case_shaped() -> st.SearchStrategy[Any]:
    value = json_values(CASE_KEYS)
    text = st.text(max_size=6) | st.sampled_from(["a", "b", "ok", "error"]) | value
    source = st.fixed_dictionaries({}, optional={k: text for k in
                                                 ("id", "text", "title", "retrieval_score",
                                                  "metadata")})
    call = st.fixed_dictionaries({}, optional={k: text for k in
                                               ("id", "name", "arguments", "output", "status",
                                                "counterfactual")})
    return st.fixed_dictionaries(
        {"id": st.text(max_size=4) | value, "query": st.text(max_size=8) | value},
        optional={"sources": st.lists(source | value, max_size=3) | value,
                  "tool_calls": st.lists(call | value, max_size=3) | value,
                  "answer": value, "system": value, "decoding": value, "metadata": value})


@BOUNDED
@given(data=_case_shaped() | json_values(CASE_KEYS))
def test_any_case_json_is_a_case_or_a_named_case_error(data: Any) -> None:
    try:
        case = Case.from_dict(data)
    except CaseError as err:
        assert isinstance(err.field, str) and err.message
        return
    assert Case.from_dict(json.loads(json.dumps(case.to_dict()))) == case


# -- the proto conversion ---------------------------------------------------------------------


def _admit(request: pb.AuditRequest) -> None:
    """What admission converts, in its order (the model-free part)."""
    parameters_from_proto(request.parameters)
    case_from_proto(request.case)
    config_from_proto(request.config if request.HasField("config") else None)


def _converted_or_invalid(raw: bytes) -> None:
    try:
        request = pb.AuditRequest.FromString(raw)
    except Exception as err:  # what the server's deserializer sees
        refused = undecodable(raw, pb.AuditRequest.DESCRIPTOR, err)
        assert isinstance(refused, Undecodable)
        assert refused.error.status == "INVALID_ARGUMENT"
        return
    try:
        _admit(request)
    except CaseError as err:
        assert classify(err).status == "INVALID_ARGUMENT"


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            struct.fields[key].number_value = value
        elif isinstance(value, bool | str | int | float) or value is None:
            struct.update({key: value if not isinstance(value, int) or isinstance(value, bool)
                           else float(value)})
    return struct


texts = st.text(max_size=10)
requests = st.builds(
    lambda case_id, query, sources, answer, metadata, methods, ablations, keep, max_seconds,
    parameter: _request(case_id, query, sources, answer, metadata, methods, ablations, keep,
                        max_seconds, parameter),
    texts, texts, st.lists(st.tuples(texts, texts, st.floats()), max_size=3),
    st.none() | texts, st.dictionaries(texts, scalars, max_size=3),
    st.lists(st.sampled_from(["attention", "loo", "ablation", "tools", "tracing", "x", ""]),
             max_size=3),
    st.none() | st.integers(-2**31, 2**31 - 1), st.none() | st.floats(),
    st.none() | st.floats(), st.none() | st.tuples(texts, scalars))


def _request(case_id: str, query: str, sources: list[tuple[str, str, float]],
             answer: str | None, metadata: dict[str, Any], methods: list[str],
             ablations: int | None, keep: float | None, max_seconds: float | None,
             parameter: tuple[str, Any] | None) -> pb.AuditRequest:
    request = pb.AuditRequest(id="r")
    request.case.id, request.case.query = case_id, query
    for source_id, text, score in sources:
        request.case.sources.add(id=source_id, text=text, retrieval_score=score)
    if answer is not None:
        request.case.answer = answer
    request.case.metadata.CopyFrom(_struct(metadata))
    request.config.methods.extend(methods)
    if ablations is not None:
        request.config.ablations = ablations
    if keep is not None:
        request.config.ablation_keep_prob = keep
    if max_seconds is not None:
        request.config.max_seconds = max_seconds
    if parameter is not None:
        name, value = parameter
        if isinstance(value, bool):
            request.parameters[name].bool_param = value
        elif isinstance(value, str):
            request.parameters[name].string_param = value
        elif isinstance(value, float):
            request.parameters[name].double_param = value
        elif isinstance(value, int) and -2**63 <= value < 2**63:
            request.parameters[name].int64_param = value
    return request


@BOUNDED
@given(request=requests)
def test_any_proto_request_converts_or_is_invalid_argument(request: pb.AuditRequest) -> None:
    _converted_or_invalid(request.SerializeToString())


@BOUNDED
@given(raw=st.binary(max_size=200))
def test_any_bytes_off_the_wire_convert_or_are_invalid_argument(raw: bytes) -> None:
    _converted_or_invalid(raw)


@BOUNDED
@given(request=requests, position=st.integers(0, 10**6), junk=st.binary(min_size=1,
                                                                        max_size=4))
def test_corrupted_requests_convert_or_are_invalid_argument(request: pb.AuditRequest,
                                                            position: int, junk: bytes) -> None:
    raw = request.SerializeToString()
    at = position % (len(raw) + 1)
    _converted_or_invalid(raw[:at] + junk + raw[at + len(junk):])


short = st.text(min_size=1, max_size=6).filter(str.strip)
plain = (st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=6)
         | st.floats(allow_nan=False, allow_infinity=False))
metadata = st.dictionaries(st.text(max_size=4), st.recursive(
    plain, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8), max_size=3)
valid_cases = st.fixed_dictionaries(
    {"id": short, "query": short,
     "sources": st.lists(st.fixed_dictionaries(
         {"id": short.map(lambda t: f"d-{t}"), "text": st.text(max_size=12)},
         optional={"title": st.none() | st.text(max_size=5),
                   "retrieval_score": st.none() | st.floats(allow_nan=False),
                   "metadata": metadata}), max_size=3, unique_by=lambda s: s["id"]),
     "tool_calls": st.lists(st.fixed_dictionaries(
         {"id": short.map(lambda t: f"call-{t}"), "name": short},
         optional={"arguments": st.text(max_size=8), "output": st.text(max_size=8),
                   "status": st.sampled_from(["ok", "error"]),
                   "counterfactual": st.none() | st.text(max_size=5)}),
         max_size=2, unique_by=lambda c: c["id"])},
    optional={"system": st.none() | st.text(max_size=8), "answer": st.none() | short,
              "model": st.none() | st.text(max_size=5),
              "decoding": st.fixed_dictionaries({"max_new_tokens": st.integers(1, 4096)}),
              "metadata": metadata})


@BOUNDED
@given(data=valid_cases)
def test_valid_cases_survive_the_proto_round_trip(data: Any) -> None:
    case = Case.from_dict(data)
    assert case_from_proto(case_to_proto(case)).to_dict() == case.to_dict()


# -- the log readers --------------------------------------------------------------------------

log_values = json_values(INGEST_WORDS)
log_files = st.one_of(
    st.tuples(st.just(".jsonl"), st.lists(log_values, min_size=1, max_size=4).map(
        lambda docs: "\n".join(json.dumps(d) for d in docs).encode())),
    st.tuples(st.just(".json"), log_values.map(lambda d: json.dumps(d).encode())),
    st.tuples(st.sampled_from([".json", ".jsonl"]), st.binary(max_size=80)),
    st.tuples(st.just(".jsonl"), st.tuples(log_values, st.binary(max_size=20)).map(
        lambda pair: json.dumps(pair[0]).encode() + b"\n" + pair[1])),
)


@BOUNDED
@given(file=log_files, fmt=st.sampled_from([None, *FORMATS]),
       parse_arguments=st.booleans())
def test_any_log_file_gives_records_or_named_errors(file: tuple[str, bytes], fmt: Any,
                                                    parse_arguments: bool) -> None:
    suffix, content = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"log{suffix}"
        path.write_bytes(content)
        records = list(read_logs([path], fmt=fmt, parse_arguments=parse_arguments))
    for record in records:
        assert (record.case is None) != (record.error is None)
        if record.error is not None:
            assert isinstance(record.error, CaseError)


@pytest.fixture(scope="module")
def real_logs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, list[Any]]]:
    """Logs of one conversation in every format, written by the real instrumentation."""
    import ingest_logs

    folder = tmp_path_factory.mktemp("logs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        files = [ingest_logs.write_jsonl(folder / "openai.jsonl", [ingest_logs.openai_record()]),
                 ingest_logs.write_openinference(folder / "oi.json"),
                 ingest_logs.write_openinference(folder / "flat.jsonl", form="flat"),
                 ingest_logs.write_otel_genai(folder / "genai.json", monkeypatch),
                 ingest_logs.write_langsmith(folder / "langsmith.jsonl")]
    logs = []
    for path in files:
        text = path.read_text()
        docs = ([json.loads(line) for line in text.splitlines() if line.strip()]
                if path.suffix == ".jsonl" else [json.loads(text)])
        assert all(r.ok for r in read_logs([path])), path  # the seeds themselves are good
        logs.append((path.suffix, docs))
    return logs


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutated(doc: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(doc))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copy


@BOUNDED
@given(data=st.data())
def test_real_logs_with_any_field_changed_give_records_or_named_errors(
        real_logs: list[tuple[str, list[Any]]], data: st.DataObject) -> None:
    suffix, docs = data.draw(st.sampled_from(real_logs))
    docs = list(docs)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(docs) - 1))
        path = data.draw(st.sampled_from(_paths(docs[index])))
        docs[index] = _mutated(docs[index], path, data.draw(log_values),
                               delete=bool(path) and data.draw(st.booleans()))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"log{suffix}"
        path.write_text("\n".join(json.dumps(d) for d in docs) if suffix == ".jsonl"
                        else json.dumps(docs[0]))
        records = list(read_logs([path], parse_arguments=data.draw(st.booleans())))
    assert records
    for record in records:
        assert (record.case is None) != (record.error is None)
        if record.error is not None:
            assert isinstance(record.error, CaseError)
