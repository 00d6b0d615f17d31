"""The gRPC service on a real localhost socket with the real packaged model.

One server for the module (the model is the session's, loaded once); tests run in file order
and each leaves the queue empty. Audits of the same case share the model's score cache, as
they do in production, so repeated audits here are cheap.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from service_support import FAST, LOO, bad_request_field, five_source_case

from relyscope.audits import run_audit
from relyscope.client import Client, ServiceCallError
from relyscope.config import AuditConfig
from relyscope.protocol.convert import case_to_proto, config_to_proto, report_from_proto
from relyscope.service.api.server import BackgroundServer, ServeOptions, message_size_options
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc

pytestmark = pytest.mark.real_model

QUEUE_SIZE = 2


@pytest.fixture(scope="module")
def gated_server(real_lm):
    """A server whose model 'loads' only when the test opens the gate."""
    gate = threading.Event()

    def loader():
        assert gate.wait(120), "the test never opened the loading gate"
        return real_lm

    server = BackgroundServer(ServeOptions(host="127.0.0.1", port=0, queue_size=QUEUE_SIZE,
                                           grace_s=0.5), loader=loader)
    server.start(wait_ready=False)
    yield server, gate
    gate.set()
    server.stop(grace=0.5)


@pytest.fixture(scope="module")
def server(gated_server):
    handle, gate = gated_server
    gate.set()
    handle.wait_ready(timeout=120)
    return handle


@pytest.fixture(scope="module")
def channel(gated_server):
    handle, _ = gated_server
    with grpc.insecure_channel(f"127.0.0.1:{handle.port}",
                               options=message_size_options(64 * 2**20)) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return audit_pb2_grpc.AuditServiceStub(channel)


@pytest.fixture(scope="module")
def client(gated_server):
    handle, _ = gated_server
    with Client(f"127.0.0.1:{handle.port}", timeout=300) as c:
        yield c


def request_for(case, config=None, **parameters) -> pb.AuditRequest:
    request = pb.AuditRequest(id=f"req-{case.id}", case=case_to_proto(case))
    if config is not None:
        request.config.CopyFrom(config_to_proto(config))
    for key, value in parameters.items():
        choice = {bool: "bool_param", int: "int64_param", float: "double_param",
                  str: "string_param"}[type(value)]
        request.parameters[key].CopyFrom(pb.Parameter(**{choice: value}))
    return request


def health_status(channel, service: str = "") -> str:
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


# -- health and reflection ----------------------------------------------------------------------


def test_health_is_not_serving_until_the_model_is_loaded_then_serving(gated_server, channel,
                                                                      stub):
    handle, gate = gated_server
    if gate.is_set():
        pytest.skip("the model was already loaded by an earlier test in this run")
    assert health_status(channel) == "NOT_SERVING"
    assert health_status(channel, "relyscope.v1.AuditService") == "NOT_SERVING"
    with pytest.raises(grpc.RpcError) as err:  # calls are refused while loading
        stub.Audit(request_for(five_source_case(), LOO), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    gate.set()
    handle.wait_ready(timeout=120)
    assert health_status(channel) == "SERVING"
    assert health_status(channel, "relyscope.v1.AuditService") == "SERVING"
    # no --index: the pipeline is not served, and says so
    assert health_status(channel, "relyscope.v1.PipelineService") == "NOT_SERVING"


def test_reflection_lists_the_services_and_their_schema(server, channel):
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {"relyscope.v1.AuditService", "relyscope.v1.PipelineService",
            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
    audit_file = database.FindFileContainingSymbol("relyscope.v1.AuditService")
    assert audit_file.name == "relyscope/v1/audit.proto"
    methods = {m.name for m in audit_file.service[0].method}
    assert methods == {"Audit", "StreamAudit", "SubmitAudit", "GetAudit", "CancelAudit",
                       "AuditBatch"}


# -- the same audit three ways ------------------------------------------------------------------


def test_unary_streaming_and_job_audits_give_the_same_scores(server, client, real_lm):
    case = five_source_case()
    unary = client.audit(case, FAST, request_id="unary-1")
    events = list(client.stream_audit(case, FAST))
    job_id = client.submit(case, FAST)
    job = client.wait(job_id, timeout=300)
    library = run_audit(case, real_lm, FAST)

    kinds = [e["event"] for e in events]
    assert kinds == ["queued", "method_started", "method_finished", "method_started",
                     "method_finished", "report"]
    streamed = events[-1]["report"]
    assert job.state == "DONE" and job.methods_done == ("attention", "loo")
    for method in ("loo", "attention"):
        expected = library.ranking(method)
        for report in (unary, streamed, job.report):
            assert report.ranking(method) == expected, method
    for report in (unary, streamed, job.report):
        for unit in library.units:
            got = report.unit(unit.id)
            assert got.reliance == unit.reliance
            assert got.provenance == unit.provenance
            assert got.verdict == unit.verdict
        assert report.answer_logprob == library.answer_logprob
        assert report.faithfulness == library.faithfulness
        assert report.settings["config"] == library.settings["config"]
    # each method's scores, as streamed when they landed, are the final report's scores
    finished = {e["method"]: e["scores"] for e in events if e["event"] == "method_finished"}
    assert finished["loo"] == {u.id: u.reliance["loo"] for u in library.units}
    assert unary.ranking("loo")[0] == "d1"  # the source holding the answer's fact


def test_the_response_echoes_the_request_id(server, stub):
    response = stub.Audit(request_for(five_source_case(), LOO), timeout=300)
    assert response.id == "req-zelk5"
    assert report_from_proto(response.report).case_id == "zelk5"


def test_a_batch_streams_one_result_per_case_and_a_bad_case_does_not_end_it(server, stub,
                                                                          client):
    requests = [request_for(five_source_case(), LOO), duplicate_ids(),
                request_for(five_source_case(), LOO)]
    requests[2].id = "third"
    responses = list(stub.AuditBatch(iter(requests), timeout=300))
    assert [r.id for r in responses] == ["req-zelk5", "req-zelk5", "third"]
    assert [r.HasField("error") for r in responses] == [False, True, False]
    assert responses[1].error.status == "INVALID_ARGUMENT"
    assert responses[1].error.field == "case.sources[1].id"
    assert report_from_proto(responses[2].report).ranking("loo")[0] == "d1"
    # the client's batch helper gives reports in order
    reports = list(client.audit_batch([five_source_case(), five_source_case()], LOO))
    assert [r.case_id for r in reports] == ["zelk5", "zelk5"]


# -- errors -------------------------------------------------------------------------------------

def duplicate_ids() -> pb.AuditRequest:
    request = request_for(five_source_case(), LOO)
    request.case.sources[1].id = "d0"
    return request


def blank_query() -> pb.AuditRequest:
    request = request_for(five_source_case(), LOO)
    request.case.query = "  "
    return request


def empty_answer() -> pb.AuditRequest:
    request = request_for(five_source_case(), LOO)
    request.case.answer = ""
    return request


BAD_INPUTS = [
    ("duplicate unit ids", duplicate_ids, grpc.StatusCode.INVALID_ARGUMENT,
     "case.sources[1].id"),
    ("blank query", blank_query, grpc.StatusCode.INVALID_ARGUMENT, "case.query"),
    ("empty answer", empty_answer, grpc.StatusCode.INVALID_ARGUMENT, "case.answer"),
    ("nothing to audit", lambda: request_for(five_source_case(sources=[])),
     grpc.StatusCode.INVALID_ARGUMENT, "case.sources"),
    ("unknown method", lambda: _with_methods("loo", "telepathy"),
     grpc.StatusCode.INVALID_ARGUMENT, "config.methods[1]"),
    ("config out of range", lambda: _with(pb.AuditConfig(ablations=1)),
     grpc.StatusCode.INVALID_ARGUMENT, "config.method_settings.ablation.ablations"),
    ("malformed tool arguments", lambda: request_for(five_source_case(tool_calls=[
        {"id": "call_1", "name": "weather", "arguments": "{city: Mirel", "output": "18 C"}]),
        LOO, parse_arguments=True),
     grpc.StatusCode.INVALID_ARGUMENT, "case.tool_calls[call_1].arguments"),
    ("unknown parameter", lambda: request_for(five_source_case(), LOO, max_tokns=10),
     grpc.StatusCode.INVALID_ARGUMENT, "parameters[max_tokns]"),
    ("over the max_tokens budget", lambda: request_for(five_source_case(), LOO, max_tokens=50),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "parameters[max_tokens]"),
    ("over the model's context", lambda: request_for(five_source_case(sources=[
        {"id": "long", "text": "The Zelk guild keeps ledgers of copper and salt. " * 1200}])),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "case"),
]


def _with(config: pb.AuditConfig) -> pb.AuditRequest:
    request = request_for(five_source_case())
    request.config.CopyFrom(config)
    return request


def _with_methods(*methods: str) -> pb.AuditRequest:
    return _with(pb.AuditConfig(methods=list(methods)))


@pytest.mark.parametrize("label,build,code,field", BAD_INPUTS,
                         ids=[b[0].replace(" ", "-") for b in BAD_INPUTS])
def test_bad_input_gets_its_status_with_the_field_named(server, channel, stub, label, build,
                                                        code, field):
    def stream(request, timeout):
        return list(stub.StreamAudit(request, timeout=timeout))

    for method in (stub.Audit, stub.SubmitAudit, stream):
        with pytest.raises(grpc.RpcError) as err:
            method(build(), timeout=60)
        assert err.value.code() == code, (label, err.value.details())
        assert bad_request_field(err.value) == field
        assert field in err.value.details()
    assert health_status(channel) == "SERVING"


def test_the_client_raises_with_the_status_and_the_field(server, client):
    with pytest.raises(ServiceCallError) as err:
        client.audit(five_source_case(), LOO, parameters={"max_tokens": "many"})
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.field == "parameters[max_tokens]"


def test_messages_over_grpcs_default_4_mib_reach_the_server(server, stub):
    # 5 MiB of case: past gRPC's default receive limit, inside the explicit 64 MiB one. The
    # server reads it and answers with its own token-budget check (QuotaFailure on "case").
    request = request_for(five_source_case(sources=[
        {"id": "huge", "text": "salt " * (5 * 2**20 // 5)}]), LOO)
    assert request.ByteSize() > 5 * 2**20
    with pytest.raises(grpc.RpcError) as err:
        stub.Audit(request, timeout=120)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert bad_request_field(err.value) == "case"
    assert "tokens" in err.value.details()


def test_unknown_job_ids_are_not_found(server, client):
    for call in (client.get, client.cancel):
        with pytest.raises(ServiceCallError) as err:
            call("no-such-job")
        assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_pipeline_without_an_index_is_unimplemented_with_the_reason(server, channel):
    with pytest.raises(grpc.RpcError) as err:
        pipeline_pb2_grpc.PipelineServiceStub(channel).Ask(
            pipeline_pb2.AskRequest(id="q1", query="Who founded the Zelk guild?"), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "--index" in err.value.details()


def test_the_server_still_serves_after_the_bad_inputs(server, client):
    assert client.health() == "SERVING"
    report = client.audit(five_source_case(), LOO)
    assert report.ranking("loo")[0] == "d1"


# -- queue, cancellation, deadlines ----------------------------------------------------------------


def test_a_burst_over_the_queue_is_refused_and_the_rest_completes(server, stub):
    # attention runs on every call (it is not cached), so each job keeps the model busy
    requests = [request_for(five_source_case(), FAST) for _ in range(QUEUE_SIZE + 3)]
    futures = [stub.Audit.future(r, timeout=300) for r in requests]
    done, refused = [], []
    for future in futures:
        try:
            done.append(future.result())
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
            assert bad_request_field(err) == "queue"
            refused.append(err)
    assert len(done) == QUEUE_SIZE and len(refused) == 3
    for response in done:
        assert report_from_proto(response.report).ranking("loo")[0] == "d1"


def test_cancelling_a_queued_job_drops_it_and_a_running_one_stops(server, client):
    # a case not audited before: attention alone takes seconds, and a running job stops at
    # its next progress event (a method boundary)
    running = client.submit(five_source_case("fresh", query="Who set up the Zelk guild?"),
                            FAST)
    queued = client.submit(five_source_case(), LOO)
    cancelled = client.cancel(queued)
    assert cancelled.state == "CANCELLED"
    deadline = time.monotonic() + 60
    while client.get(running).state == "QUEUED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.cancel(running).state in ("RUNNING", "CANCELLED")
    final = client.wait(running, timeout=120)
    assert final.state == "CANCELLED"
    assert "loo" not in final.methods_done
    assert client.get(queued).state == "CANCELLED"


def test_a_call_deadline_returns_a_partial_report_not_deadline_exceeded(server, client):
    # 12 units and 1024 random masks: minutes of scoring, far more than the call allows
    extra = [{"id": f"f{i}", "text": f"The {name} archive holds {i * 7} maps of the coast."}
             for i, name in enumerate(("Brisk", "Tollan", "Marrow", "Quill", "Ostre", "Vane",
                                       "Harl"))]
    case = five_source_case("deadline", query="Which guild did Anna Roth found?")
    case = case.model_copy(update={"sources": case.sources + tuple(
        type(case.sources[0])(**s) for s in extra)})
    heavy = AuditConfig(methods=("loo", "ablation"), ablations=1024, lds_masks=64)
    # the runner sizes each scoring chunk to the time left (from the last measured pass
    # time), so it stops a little before its deadline (45 s - 30 s margin = 15 s)
    started = time.monotonic()
    report = client.audit(case, heavy, timeout=45, parameters={"deadline_margin_s": 30.0})
    took = time.monotonic() - started
    assert report.partial, report.cost
    assert 10 <= took < 45  # it used its time budget, then stopped well inside the call
    assert "ablation" in report.settings["cut"]
    assert any("cut" in w for w in report.warnings)
    assert report.ranking("loo")[0] == "d1"  # what was scored in time is still reported
