"""Bearer-token auth and TLS / mutual TLS on a real localhost socket."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_support import LOO, five_source_case, running_server, write_test_pki

from relyscope.client import Client, ServiceCallError

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
