"""`relyscope serve` as a real process: loads the packaged model, health goes NOT_SERVING ->
SERVING, the auth token comes from the environment, SIGTERM flips health back and exits 0."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_support import bad_request_field, five_source_case

from relyscope.protocol.convert import case_to_proto
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc

pytestmark = pytest.mark.real_model

REPO = Path(__file__).resolve().parents[1]


def test_serve_loads_the_model_reports_health_and_shuts_down_gracefully():
    env = {**os.environ, "RELYSCOPE_AUTH_TOKEN": "from-env",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # `python -m relyscope serve` is the `relyscope serve` command
    proc = subprocess.Popen([sys.executable, "-m", "relyscope", "serve", "--host",
                             "127.0.0.1", "--port", "0", "--queue-size", "2", "--grace", "1"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr],
                     daemon=True).start()
    try:
        port = None
        while port is None:
            line = lines.get(timeout=60)
            found = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=300)
            status = health_pb2.HealthCheckResponse
            assert next(watch).status == status.NOT_SERVING  # the model is still loading
            assert next(watch).status == status.SERVING

            audit = audit_pb2_grpc.AuditServiceStub(channel)
            request = pb.AuditRequest(id="r", case=case_to_proto(five_source_case()))
            request.case.sources[2].id = "d0"
            with pytest.raises(grpc.RpcError) as err:  # the token comes from the env var
                audit.Audit(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as err:
                audit.Audit(request, timeout=30,
                            metadata=(("authorization", "Bearer from-env"),))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad_request_field(err.value) == "case.sources[2].id"

            proc.send_signal(signal.SIGTERM)
            assert next(watch).status == status.NOT_SERVING  # graceful shutdown flips it
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
