"""Helpers for the service tests: cases, in-process servers, rich-status details, test certs."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM
from relyscope.service.api.server import BackgroundServer, ServeOptions

SYSTEM = "Answer the question in one sentence using the context."
SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt."),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel."),
    ("d2", "Copper prices rose sharply in the northern markets last year."),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns."),
    ("d4", "Tidewater lighthouses use rotating lenses to guide ships at night."),
]
FAST = AuditConfig(methods=("attention", "loo"))
LOO = AuditConfig(methods=("loo",))


def five_source_case(case_id: str = "zelk5", query: str = "Who founded the Zelk guild?",
                     **extra: Any) -> Case:
    data: dict[str, Any] = {
        "id": case_id, "system": SYSTEM, "query": query,
        "sources": [{"id": i, "text": t, "retrieval_score": 0.9 - 0.1 * n,
                     "metadata": {"rank": n}} for n, (i, t) in enumerate(SOURCES)],
        "answer": "The Zelk guild was founded by Anna Roth.",
        "metadata": {"origin": "service tests"}}
    data.update(extra)
    return Case.from_dict(data)


@contextmanager
def running_server(lm: CausalLM, pipeline: Any = None, **options: Any
                   ) -> Iterator[BackgroundServer]:
    """A real server on a free localhost port, sharing the session's model."""
    server = BackgroundServer(ServeOptions(host="127.0.0.1", port=0, **options),
                              loader=lambda: lm, pipeline=pipeline)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)


def bad_request_field(err: grpc.RpcError) -> str:
    """The field of the google.rpc.BadRequest (or QuotaFailure subject) in a failed call."""
    status = rpc_status.from_call(err)
    assert status is not None, "no rich status details on the error"
    for detail in status.details:
        for kind, attr in ((error_details_pb2.BadRequest, "field_violations"),
                           (error_details_pb2.QuotaFailure, "violations")):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                first = getattr(message, attr)[0]
                return first.field if attr == "field_violations" else first.subject
    raise AssertionError(f"no BadRequest/QuotaFailure in {status}")


# -- certificates -------------------------------------------------------------------------


def write_test_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server cert for localhost/127.0.0.1 and a client cert, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue(subject: str, key: Any, issuer: x509.Name, signer: Any, *, ca: bool,
              usage: Any = None, sans: list[Any] | None = None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("relyscope test CA", ca_key, name("relyscope test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue("localhost", server_key, ca.subject, ca_key, ca=False,
                   usage=ExtendedKeyUsageOID.SERVER_AUTH,
                   sans=[x509.DNSName("localhost"),
                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = issue("relyscope test client", client_key, ca.subject, ca_key, ca=False,
                   usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM),
             "server_cert": server.public_bytes(serialization.Encoding.PEM),
             "server_key": key_pem(server_key),
             "client_cert": client.public_bytes(serialization.Encoding.PEM),
             "client_key": key_pem(client_key)}
    paths = {}
    for label, data in files.items():
        paths[label] = folder / f"{label}.pem"
        paths[label].write_bytes(data)
    return paths
