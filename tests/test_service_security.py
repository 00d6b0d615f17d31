"""Bearer-token auth, TLS / mutual TLS, hostile input and the bind address, on a real
localhost socket."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_support import (
    LOO,
    bad_request_field,
    five_source_case,
    running_server,
    write_test_pki,
)

from relyscope.client import Client, ServiceCallError
from relyscope.protocol.convert import case_to_proto, config_to_proto
from relyscope.service.api.server import ServeOptions, exposure_warning
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc

pytestmark = pytest.mark.real_model

TOKEN = "s3cret-token"


def test_auth_rejects_a_missing_or_wrong_token_and_accepts_the_right_one(real_lm):
    with running_server(real_lm, auth_token=TOKEN) as server:
        target = f"127.0.0.1:{server.port}"
        with Client(target, timeout=120) as anonymous:
            assert anonymous.health() == "SERVING"  # health stays open for probes
            with pytest.raises(ServiceCallError) as err:
                anonymous.audit(five_source_case(), LOO)
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(ServiceCallError) as err:
                anonymous.get("some-job")  # every AuditService call, not only audits
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(ServiceCallError) as err:  # a stream is refused too
                list(anonymous.stream_audit(five_source_case(), LOO))
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        with Client(target, token="wrong", timeout=120) as wrong:
            with pytest.raises(ServiceCallError) as err:
                wrong.audit(five_source_case(), LOO)
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        with Client(target, token=TOKEN, timeout=120) as right:
            report = right.audit(five_source_case(), LOO)
            assert report.ranking("loo")[0] == "d1"
            with pytest.raises(ServiceCallError) as err:  # authenticated, then NOT_FOUND
                right.get("some-job")
            assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_tls_a_client_with_the_ca_works_and_a_plaintext_one_does_not(real_lm, tmp_path):
    pki = write_test_pki(tmp_path)
    with running_server(real_lm, tls_cert=str(pki["server_cert"]),
                        tls_key=str(pki["server_key"])) as server:
        target = f"localhost:{server.port}"
        with Client(target, root_certificates=pki["ca"], timeout=120) as client:
            assert client.health() == "SERVING"
            assert client.audit(five_source_case(), LOO).ranking("loo")[0] == "d1"
        with grpc.insecure_channel(target) as plain:
            with pytest.raises(grpc.RpcError) as err:
                health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(),
                                                        timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate(real_lm, tmp_path):
    pki = write_test_pki(tmp_path)
    with running_server(real_lm, tls_cert=str(pki["server_cert"]),
                        tls_key=str(pki["server_key"]),
                        tls_client_ca=str(pki["ca"])) as server:
        target = f"127.0.0.1:{server.port}"
        with Client(target, root_certificates=pki["ca"], client_cert=pki["client_cert"],
                    client_key=pki["client_key"], timeout=120) as client:
            assert client.audit(five_source_case(), LOO).ranking("loo")[0] == "d1"
        with Client(target, root_certificates=pki["ca"], timeout=10) as no_cert:
            with pytest.raises(ServiceCallError) as err:
                no_cert.health()
            assert err.value.code == grpc.StatusCode.UNAVAILABLE


# -- hostile input ----------------------------------------------------------------------------

AUDIT = "/relyscope.v1.AuditService/Audit"


def _raw_call(channel: grpc.Channel, method: str, raw: bytes, timeout: float = 30) -> Any:
    """A unary call whose request bytes are sent exactly as given."""
    call = channel.unary_unary(method, request_serializer=lambda data: data,
                               response_deserializer=pb.AuditResponse.FromString)
    return call(raw, timeout=timeout)


def _with_bad_bytes(marker: bytes) -> bytes:
    request = pb.AuditRequest(id="r", case=case_to_proto(five_source_case()))
    raw = request.SerializeToString()
    assert raw.count(marker) == 1
    return raw.replace(marker, b"\xff\xfe" + marker[2:])


@pytest.mark.parametrize("marker,field", [
    (b"in the harbour town", "case.sources[1].text"),
    (b"service tests", "case.metadata[origin]"),
    (b"Who founded", "case.query"),
])
def test_invalid_utf8_is_invalid_argument_naming_the_field_in_one_log_line(
        real_lm, caplog, marker, field):
    with running_server(real_lm) as server, \
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        caplog.clear()
        with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as err:
            _raw_call(channel, AUDIT, _with_bad_bytes(marker))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_field(err.value) == field
        assert "not valid UTF-8" in err.value.details()
        about = [r for r in caplog.records if field in r.getMessage()]
        assert len(about) == 1, [r.getMessage() for r in caplog.records]
        assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records)
        # the same bytes fixed are audited: the server is fine afterwards
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        request = pb.AuditRequest(id="ok", case=case_to_proto(five_source_case()),
                                  config=config_to_proto(LOO))
        assert stub.Audit(request, timeout=120).report.case_id == "zelk5"


def test_invalid_utf8_in_streams_and_garbage_bytes_are_refused_too(real_lm, caplog):
    bad = _with_bad_bytes(b"in the harbour town")
    with running_server(real_lm) as server, \
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with caplog.at_level(logging.INFO):
            stream = channel.unary_stream("/relyscope.v1.AuditService/StreamAudit",
                                          request_serializer=lambda data: data,
                                          response_deserializer=pb.AuditEvent.FromString)
            with pytest.raises(grpc.RpcError) as err:
                list(stream(bad, timeout=30))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad_request_field(err.value) == "case.sources[1].text"

            batch = channel.stream_stream("/relyscope.v1.AuditService/AuditBatch",
                                          request_serializer=lambda data: data,
                                          response_deserializer=pb.AuditResponse.FromString)
            with pytest.raises(grpc.RpcError) as err:
                list(batch(iter([bad]), timeout=30))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad_request_field(err.value) == "case.sources[1].text"

            with pytest.raises(grpc.RpcError) as err:  # truncated: not a message at all
                _raw_call(channel, AUDIT, b"\x0a\xff\xff\xff")
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid AuditRequest message" in err.value.details()
        assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records)


def test_a_20mb_request_is_refused_on_characters_before_tokenising(real_lm):
    case = five_source_case(sources=[{"id": "huge", "text": "salt " * (4 * 2**20)}])
    request = pb.AuditRequest(id="big", case=case_to_proto(case), config=config_to_proto(LOO))
    assert request.ByteSize() > 20 * 2**20
    with running_server(real_lm) as server, \
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            stub.Audit(request, timeout=60)
        elapsed = time.monotonic() - started
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert bad_request_field(err.value) == "case"
    assert "characters, over the model's context of 8192 tokens" in err.value.details()
    assert elapsed < 5, elapsed  # tokenising 20 MB took about 30 s


# -- where the server listens -----------------------------------------------------------------


def test_serve_binds_loopback_by_default_and_warns_beyond_it_without_tls_and_token():
    from relyscope.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    assert ServeOptions().host == "127.0.0.1"
    for host in ("127.0.0.1", "localhost", "[::1]"):
        assert exposure_warning(ServeOptions(host=host)) is None
    plain = exposure_warning(ServeOptions(host="0.0.0.0"))
    assert plain is not None and "without TLS and a bearer token" in plain
    token_only = exposure_warning(ServeOptions(host="[::]", auth_token="t"))
    assert token_only is not None and "without TLS" in token_only
    assert exposure_warning(ServeOptions(host="0.0.0.0", auth_token="t", tls_cert="c",
                                         tls_key="k")) is None


def test_deploy_binds_all_interfaces_explicitly_with_a_token_from_a_secret():
    root = Path(__file__).resolve().parents[1] / "deploy"
    deployment = yaml.safe_load((root / "k8s" / "service-deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    token = {e["name"]: e for e in container["env"]}["RELYSCOPE_AUTH_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["key"] == "token"
    grace = float(args[args.index("--grace") + 1])
    assert grace + 5 < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]

    compose = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["service"]
    assert compose["command"][compose["command"].index("--host") + 1] == "0.0.0.0"
    assert compose["environment"]["RELYSCOPE_AUTH_TOKEN"].startswith("${RELYSCOPE_AUTH_TOKEN:?")
    dockerfile = (root / "Dockerfile").read_text()
    assert 'CMD ["serve", "--host", "0.0.0.0"' in dockerfile
