"""Deadlines across the service's other entry points: a submitted job is bounded by its config's
max_seconds, not by the deadline of the short call that submitted it; Ask's inline audit gets
the call's deadline (a partial report, not DEADLINE_EXCEEDED) and its cancellation."""

from __future__ import annotations

import time

import pytest
from service_support import five_source_case, running_server

from relyscope.audits.registry import method_names
from relyscope.client import Client
from relyscope.config import AuditConfig
from relyscope.errors import AuditCancelled
from relyscope.models import CausalLM

ATTENTION = AuditConfig(methods=("attention",))
ALL_METHODS = AuditConfig(methods=method_names())
# every method with settings no machine finishes inside a 40 s deadline (on a quiet 2-core
# machine the plain all-methods audit of an Ask can finish in time, and then nothing is cut)
HEAVY = ALL_METHODS.model_copy(update={"method_settings": {
    "ablation": {"ablations": 512}, "integrated_gradients": {"steps": 256},
    "tracing": {"samples": 16}}})


@pytest.fixture(scope="module")
def server(real_lm: CausalLM):
    from test_service_pipeline import make_pipeline

    with running_server(real_lm, pipeline=make_pipeline) as running:
        yield running


@pytest.mark.real_model
def test_a_submitted_job_outlives_the_deadline_of_the_call_that_submitted_it(server):
    with Client(f"127.0.0.1:{server.port}", timeout=300) as client:
        # the submission's own deadline less its margin leaves 0.1 s: were it the job's
        # limit, the audit could not even score the full answer
        job_id = client.submit(five_source_case("submit-short", "Who set up the Zelk guild?"),
                               ATTENTION, timeout=5.0, parameters={"deadline_margin_s": 4.9})
        final = client.wait(job_id, timeout=300)
        assert final.state == "DONE", final.error
        assert final.report is not None and not final.report.partial


@pytest.mark.real_model
def test_a_submitted_job_is_bounded_by_its_config_max_seconds(server):
    with Client(f"127.0.0.1:{server.port}", timeout=300) as client:
        started = time.monotonic()
        job_id = client.submit(five_source_case("submit-bounded"),
                               ALL_METHODS.model_copy(update={"max_seconds": 5.0}),
                               timeout=10)
        final = client.wait(job_id, poll=0.1, timeout=300)
        assert final.state == "DONE", final.error
        assert final.report is not None and final.report.partial
        assert final.report.cost["seconds"] <= 5.0
        assert time.monotonic() - started < 30  # not minutes of all-methods work


@pytest.mark.real_model
def test_ask_with_a_deadline_returns_a_partial_inline_audit_within_it(server):
    with Client(f"127.0.0.1:{server.port}", timeout=300) as client:
        started = time.monotonic()
        # without the deadline this audit runs for many minutes
        result = client.ask("Who founded the Zelk guild?", top_k=4, audit=HEAVY,
                            timeout=40.0)
        took = time.monotonic() - started
        assert took < 40.0
        assert result.report is not None and result.report.partial
        assert result.report.settings["cut"]


def test_a_cancelled_question_stops_before_its_first_model_call(tiny_lm):
    from test_service_pipeline import make_pipeline

    passes = tiny_lm.cost.forward_passes
    with pytest.raises(AuditCancelled):
        make_pipeline(tiny_lm).ask("Who founded the Zelk guild?", audit=ATTENTION,
                                   cancelled=lambda: True)
    assert tiny_lm.cost.forward_passes == passes  # not even the answer was generated
