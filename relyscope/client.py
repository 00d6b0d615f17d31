"""A small Python client for the relyscope gRPC service, speaking relyscope's own types.

    from relyscope.client import Client
    with Client("localhost:50051") as client:
        report = client.audit(case, AuditConfig(methods=("attention", "loo")))

Failed calls raise `ServiceCallError` with the status code, the message and, for
INVALID_ARGUMENT and RESOURCE_EXHAUSTED, the field the server named.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.protocol.convert import (
    case_from_proto,
    case_to_proto,
    config_to_proto,
    parameters_to_proto,
    report_from_proto,
    scores_from_proto,
)
from relyscope.protocol.defaults import DEFAULT_MAX_MESSAGE_BYTES
from relyscope.report_model import Report
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc


class ServiceCallError(Exception):
    """A call failed: `code` (grpc.StatusCode), `message`, and `field` when one was named."""

    def __init__(self, code: grpc.StatusCode, message: str, field: str = "") -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> ServiceCallError:
        code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
        message = err.details() if callable(getattr(err, "details", None)) else str(err)
        return cls(code, message or "", _field_of(err))


def _field_of(err: grpc.RpcError) -> str:
    try:
        status = rpc_status.from_call(err)
    except (ValueError, AttributeError):
        return ""
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                return bad.field_violations[0].field
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            detail.Unpack(quota)
            if quota.violations:
                return quota.violations[0].subject
    return ""


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    request_id: str
    state: str  # QUEUED, RUNNING, DONE, FAILED, CANCELLED
    report: Report | None = None
    error: dict[str, Any] | None = None
    methods_done: tuple[str, ...] = ()
    position: int = 0  # jobs ahead of it while queued

    @property
    def finished(self) -> bool:
        return self.state in ("DONE", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class AskResult:
    case: Case
    report: Report | None
    timings: dict[str, float] = field(default_factory=dict)


class Client:
    """Blocking client over one channel; thread safe (gRPC channels are)."""

    def __init__(self, target: str = "localhost:50051", *, token: str | None = None,
                 root_certificates: bytes | str | Path | None = None,
                 client_cert: bytes | str | Path | None = None,
                 client_key: bytes | str | Path | None = None, tls: bool | None = None,
                 timeout: float | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        if tls or (tls is None and root_certificates is not None):
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(root_certificates), private_key=_pem(client_key),
                certificate_chain=_pem(client_cert))
            self.channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.audits = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.pipeline = pipeline_pb2_grpc.PipelineServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise ServiceCallError.from_rpc_error(err) from None

    @staticmethod
    def _request(case: Case, config: AuditConfig | None, request_id: str | None,
                 parameters: Mapping[str, Any] | None) -> pb.AuditRequest:
        request = pb.AuditRequest(id=request_id or uuid.uuid4().hex, case=case_to_proto(case))
        if config is not None:
            request.config.CopyFrom(config_to_proto(config))
        parameters_to_proto(parameters or {}, request.parameters)
        return request

    # -- audits --------------------------------------------------------------------------------

    def audit(self, case: Case, config: AuditConfig | None = None, *,
              parameters: Mapping[str, Any] | None = None, request_id: str | None = None,
              timeout: float | None = None) -> Report:
        """Audit one case; with a timeout the server cuts the audit to fit (partial report)."""
        response = self._call(self.audits.Audit,
                              self._request(case, config, request_id, parameters), timeout)
        return report_from_proto(response.report)

    def stream_audit(self, case: Case, config: AuditConfig | None = None, *,
                     parameters: Mapping[str, Any] | None = None,
                     request_id: str | None = None, timeout: float | None = None
                     ) -> Iterator[dict[str, Any]]:
        """Events as dicts shaped like the audit runner's progress events; the last one is
        {"event": "report", "report": Report}. The first is {"event": "queued", ...}."""
        request = self._request(case, config, request_id, parameters)
        try:
            for message in self.audits.StreamAudit(request, timeout=timeout or self.timeout,
                                                   metadata=self._metadata):
                yield _event(message)
        except grpc.RpcError as err:
            raise ServiceCallError.from_rpc_error(err) from None

    def audit_batch(self, cases: Iterable[Case], config: AuditConfig | None = None, *,
                    timeout: float | None = None) -> Iterator[Report | ServiceCallError]:
        """One result per case, in order: a Report, or the error for that case."""
        requests = (self._request(case, config, case.id, None) for case in cases)
        try:
            for response in self.audits.AuditBatch(requests, timeout=timeout or self.timeout,
                                                   metadata=self._metadata):
                if response.HasField("error"):
                    yield ServiceCallError(grpc.StatusCode[response.error.status],
                                           response.error.message, response.error.field)
                else:
                    yield report_from_proto(response.report)
        except grpc.RpcError as err:
            raise ServiceCallError.from_rpc_error(err) from None

    # -- async jobs ----------------------------------------------------------------------------

    def submit(self, case: Case, config: AuditConfig | None = None, *,
               parameters: Mapping[str, Any] | None = None, request_id: str | None = None,
               timeout: float | None = None) -> str:
        """Queue an audit; returns the job id at once."""
        response = self._call(self.audits.SubmitAudit,
                              self._request(case, config, request_id, parameters), timeout)
        return response.job.job_id

    def get(self, job_id: str, *, timeout: float | None = None) -> JobStatus:
        return _job(self._call(self.audits.GetAudit, pb.JobRequest(job_id=job_id),
                               timeout).job)

    def cancel(self, job_id: str, *, timeout: float | None = None) -> JobStatus:
        return _job(self._call(self.audits.CancelAudit, pb.JobRequest(job_id=job_id),
                               timeout).job)

    def wait(self, job_id: str, *, poll: float = 0.2, timeout: float | None = None
             ) -> JobStatus:
        """Poll until the job is finished (or `timeout` seconds pass: TimeoutError)."""
        give_up = None if timeout is None else time.monotonic() + timeout
        while not (status := self.get(job_id)).finished:
            if give_up is not None and time.monotonic() > give_up:
                raise TimeoutError(f"job {job_id} still {status.state}")
            time.sleep(poll)
        return status

    # -- pipeline ------------------------------------------------------------------------------

    def ask(self, query: str, top_k: int = 5, *,
            tools: Sequence[tuple[str, Mapping[str, Any] | str]] = (),
            audit: AuditConfig | None = None, system: str | None = None,
            request_id: str | None = None, timeout: float | None = None) -> AskResult:
        """Retrieve, run the named tools, answer, and audit inline when `audit` is given."""
        import json

        request = pipeline_pb2.AskRequest(id=request_id or uuid.uuid4().hex, query=query,
                                          top_k=top_k)
        for name, arguments in tools:
            text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
            request.tools.add(name=name, arguments=text)
        if audit is not None:
            request.audit.CopyFrom(config_to_proto(audit))
        if system is not None:
            request.system = system
        response = self._call(self.pipeline.Ask, request, timeout)
        report = report_from_proto(response.report) if response.HasField("report") else None
        return AskResult(case=case_from_proto(response.case), report=report,
                         timings=dict(response.timings))

    # -- health --------------------------------------------------------------------------------

    def health(self, service: str = "", *, timeout: float | None = 5.0) -> str:
        """SERVING, NOT_SERVING, ... (health is open even when auth is on)."""
        response = self._call(self.health_stub.Check,
                              health_pb2.HealthCheckRequest(service=service), timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pem(value: bytes | str | Path | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def _job(message: pb.Job) -> JobStatus:
    error = None
    if message.HasField("error"):
        error = {"status": message.error.status, "message": message.error.message,
                 "field": message.error.field}
    return JobStatus(job_id=message.job_id, request_id=message.request_id,
                     state=pb.JobState.Name(message.state).removeprefix("JOB_STATE_"),
                     report=report_from_proto(message.report)
                     if message.HasField("report") else None,
                     error=error, methods_done=tuple(message.methods_done),
                     position=message.position)


def _event(message: pb.AuditEvent) -> dict[str, Any]:
    kind = message.WhichOneof("event")
    if kind == "queued":
        return {"event": "queued", "job_id": message.queued.job_id,
                "position": message.queued.position}
    if kind == "method_started":
        return {"event": "method_started", "method": message.method_started.method}
    if kind == "method_finished":
        done = message.method_finished
        return {"event": "method_finished", "method": done.method,
                "scores": scores_from_proto(done.scores), "forward_passes": done.forward_passes,
                "seconds": done.seconds}
    if kind == "method_failed":
        return {"event": "method_failed", "method": message.method_failed.method,
                "error": message.method_failed.error}
    return {"event": "report", "report": report_from_proto(message.report)}
