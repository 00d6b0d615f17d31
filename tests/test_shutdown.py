"""Graceful shutdown of a real `relyscope serve` process, SIGTERM in the middle of an audit.

Health answers NOT_SERVING through the drain (not CANCELLED), new calls are refused, and the
process exits within --grace plus a small margin even though the model thread is still busy
with an audit it cannot abandon mid-pass; stderr says what happened.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_support import SYSTEM

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.protocol.convert import case_to_proto, config_to_proto
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc

pytestmark = pytest.mark.real_model

REPO = Path(__file__).resolve().parents[1]
GRACE = 5.0
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def long_audit() -> pb.AuditRequest:
    """An audit that runs for well over a minute on a CPU."""
    case = Case.from_dict({
        "id": "slow", "system": SYSTEM, "query": "Who founded the guild of ledger 7?",
        "sources": [{"id": f"d{i}", "text": f"Ledger {i} of the Zelk guild was kept by clerk "
                                            f"number {i} in the harbour town of Mirel, who "
                                            f"wrote in copper ink every evening."}
                    for i in range(30)],
        "answer": "Clerk number 7 kept ledger 7 of the Zelk guild."})
    config = AuditConfig(methods=("attention", "loo", "ablation", "tracing"), ablations=1024,
                         tracing_samples=50)
    return pb.AuditRequest(id="slow", case=case_to_proto(case), config=config_to_proto(config))


def start_server() -> tuple[subprocess.Popen[str], queue.Queue[str], int]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "relyscope", "serve", "--port", "0",
                             "--grace", str(GRACE)], stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        found = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)  # the default host
        if found:
            return proc, lines, int(found.group(1))


def probe(channel: grpc.Channel) -> str:
    """The health status, or the status code of a failed probe."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=1)
    except grpc.RpcError as err:
        return err.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_sigterm_during_an_audit_drains_and_exits_within_grace() -> None:
    proc, lines, port = start_server()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=300)
            while next(watch).status != SERVING:
                pass
            stub = audit_pb2_grpc.AuditServiceStub(channel)
            events = stub.StreamAudit(long_audit(), timeout=600)
            assert next(events).HasField("queued")
            assert next(events).method_started.method == "attention"  # the model is busy
            outcome: list[str] = []

            def drain_events() -> None:
                try:
                    for _ in events:
                        pass
                    outcome.append("OK")
                except grpc.RpcError as err:
                    outcome.append(err.code().name)

            reader = threading.Thread(target=drain_events, daemon=True)
            reader.start()

            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            probes: list[str] = []
            refused: str | None = None
            while proc.poll() is None and time.monotonic() - signalled < GRACE + 5:
                probes.append(probe(channel))
                if refused is None and time.monotonic() - signalled > 0.5:
                    with pytest.raises(grpc.RpcError) as err:
                        stub.GetAudit(pb.JobRequest(job_id="any"), timeout=2)
                    refused = err.value.code().name
                time.sleep(0.2)
            code = proc.wait(timeout=GRACE + 10)
            exited = time.monotonic() - signalled
            reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(lines.get_nowait() for _ in range(lines.qsize()))
    assert exited < GRACE + 2, (exited, log)
    assert code == 0, log
    answered = [p for p in probes if p not in ("UNAVAILABLE", "DEADLINE_EXCEEDED")]
    assert answered and set(answered) == {"NOT_SERVING"}, probes  # never CANCELLED
    assert probes[0] == "NOT_SERVING", probes  # at once
    assert refused == "UNAVAILABLE"
    assert outcome and outcome[0] != "OK", outcome  # the long audit was cut, not finished
    assert "shutdown: SIGTERM received" in log
    assert "refusing new calls; 1 call(s) in flight, 5.0s grace" in log
    assert "grace over, cancelling 1 call(s)" in log
    assert "Traceback" not in log
