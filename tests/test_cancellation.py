"""Cooperative cancellation: a cancelled call, job or closed stream stops its audit before the
next model call (checked between model calls, inside one scoring call too), so the next
request does not wait behind abandoned work."""

from __future__ import annotations

import time

import grpc
import pytest
from service_support import five_source_case, running_server

from relyscope.audits import run_audit
from relyscope.audits.registry import method_names
from relyscope.client import Client
from relyscope.config import AuditConfig
from relyscope.errors import AuditCancelled
from relyscope.models import CausalLM
from relyscope.protocol.convert import case_to_proto, config_to_proto
from relyscope.service.jobs.inprocess import JobState
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc

pytestmark = pytest.mark.real_model

ALL_METHODS = AuditConfig(methods=method_names())
ATTENTION = AuditConfig(methods=("attention",))


def tool_case(case_id: str, query: str = "Who founded the Zelk guild?"):
    case = five_source_case(case_id, query=query, tool_calls=[
        {"id": "call_1", "name": "weather", "arguments": '{"city": "Mirel"}',
         "output": "18 C and dry in Mirel"}])
    return case.model_copy(update={"sources": case.sources[:4]})


def test_a_cancelled_library_audit_stops_at_the_next_model_call(real_lm: CausalLM):
    calls = 0

    def cancelled() -> bool:  # the caller goes away after the audit's third model call
        nonlocal calls
        calls += 1
        return calls > 3

    before = real_lm.cost.snapshot()
    with pytest.raises(AuditCancelled):
        run_audit(tool_case("lib-cancel"), real_lm, ALL_METHODS, cancelled=cancelled)
    spent = real_lm.cost - before
    # the check runs before every model call, so at most three ran (the first chunks
    # of the one shared scoring call): the variants they finished are kept and counted,
    # the rest of the all-methods plan never ran
    assert spent.model_calls <= 3, spent
    assert spent.forward_passes < 60, spent
    assert real_lm.scorer.stop is None  # nothing left armed for the next audit


@pytest.fixture(scope="module")
def server(real_lm: CausalLM):
    with running_server(real_lm) as handle:
        yield handle


def _attention_latency(client: Client, case_id: str) -> float:
    started = time.monotonic()
    report = client.audit(tool_case(case_id, query=f"Who founded the Zelk guild ({case_id})?"),
                          ATTENTION, timeout=300)
    assert not report.partial
    return time.monotonic() - started


def test_a_closed_stream_stops_its_audit_and_the_next_call_is_served_promptly(server,
                                                                              real_lm):
    jobs = server.server.jobs
    with Client(f"127.0.0.1:{server.port}", timeout=300) as client, \
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        _attention_latency(client, "warm")
        idle = _attention_latency(client, "idle")

        stub = audit_pb2_grpc.AuditServiceStub(channel)
        request = pb.AuditRequest(id="abandoned", case=case_to_proto(tool_case("abandoned")),
                                  config=config_to_proto(ALL_METHODS))
        call = stub.StreamAudit(request, timeout=600)  # no deadline cut: minutes of work
        queued = next(call)
        job_id = queued.queued.job_id
        started = next(call)  # the first method has started: the audit is running
        assert started.WhichOneof("event") == "method_started", started
        passes_at_cancel = real_lm.cost.forward_passes
        call.cancel()  # the caller goes away

        chunk = 512 * (real_lm.seconds_per_token or 0.05)  # one scoring call's worth
        next_call = _attention_latency(client, "next")

        job = jobs.get(job_id)
        assert job.state is JobState.CANCELLED, job
        assert "integrated_gradients" not in job.methods_done
        after = real_lm.cost.forward_passes - passes_at_cancel
        # after the cancel: at most the call in flight, then only the next attention audit
        # (attention pass, full answer, joint removal, faithfulness probes)
        assert after <= 40, after
        # served once the call in flight ended, not after the abandoned audit's plan
        assert next_call <= 1.5 * idle + 1.5 * chunk, (next_call, idle, chunk)


def test_a_cancelled_job_stops_before_its_next_model_call(server, real_lm):
    with Client(f"127.0.0.1:{server.port}", timeout=300) as client:
        job_id = client.submit(tool_case("job-cancel"), ALL_METHODS)
        deadline = time.monotonic() + 120
        while client.get(job_id).state == "QUEUED" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # well inside the first scoring call
        passes = real_lm.cost.forward_passes
        client.cancel(job_id)
        final = client.wait(job_id, timeout=120)
        assert final.state == "CANCELLED"
        assert real_lm.cost.forward_passes - passes <= 16  # one chunk at most, not the plan
