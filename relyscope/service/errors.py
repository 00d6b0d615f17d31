"""Which gRPC status a failure becomes, with the offending field named.

`classify` turns any exception from admission or from the model thread into a `JobError`
(a status name, a message and the field), the form a job stores and a Redis backend could
store too. `rich_status` turns that into a grpc.Status carrying google.rpc details:
BadRequest for INVALID_ARGUMENT, QuotaFailure for RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from relyscope.case import CaseError
from relyscope.errors import AuditCancelled, BudgetTooSmall, ContextOverflow
from relyscope.limits import OverBudget


@dataclass(frozen=True)
class JobError:
    """A failure as a status name (a grpc.StatusCode name), a message and the field."""

    status: str
    message: str
    field: str = ""

    @property
    def code(self) -> int:
        return int(code_pb2.Code.Value(self.status))


class ServiceError(Exception):
    """Raised by admission checks: carries the status the caller should get."""

    def __init__(self, status: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.error = JobError(status, message, field)


class QueueFull(ServiceError):
    def __init__(self, capacity: int) -> None:
        super().__init__("RESOURCE_EXHAUSTED",
                         f"the audit queue is full ({capacity} jobs queued or running); "
                         "retry later", "queue")


class JobNotFound(ServiceError):
    def __init__(self, job_id: str) -> None:
        super().__init__("NOT_FOUND", f"no job with id {job_id!r}", "job_id")


class JobCancelled(Exception):
    """Raised inside the model thread at the next progress event of a cancelled job."""


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]-]*): (.+)$", re.DOTALL)


def classify(err: BaseException) -> JobError:
    """The status a caller should see for `err`."""
    if isinstance(err, ServiceError):
        return err.error
    if isinstance(err, OverBudget):  # well-formed, but more than this server takes
        return JobError("RESOURCE_EXHAUSTED", err.message, err.field)
    if isinstance(err, CaseError):
        return JobError("INVALID_ARGUMENT", err.message, err.field)
    if isinstance(err, JobCancelled | AuditCancelled):
        return JobError("CANCELLED", "the job was cancelled")
    if isinstance(err, BudgetTooSmall):  # the runner could not score even the full answer
        if err.timed_out:  # answered at once, before the deadline: it is too short to use
            return JobError("RESOURCE_EXHAUSTED", f"deadline too short: {err}", "deadline")
        return JobError("RESOURCE_EXHAUSTED", str(err), "config.max_forward_passes")
    if isinstance(err, ContextOverflow):
        return JobError("RESOURCE_EXHAUSTED", str(err), "case")
    if isinstance(err, ValueError):
        text = str(err)
        match = _FIELD_PREFIX.match(text)
        if match:
            return JobError("INVALID_ARGUMENT", match.group(2), match.group(1))
        return JobError("INVALID_ARGUMENT", text)
    return JobError("INTERNAL", f"{type(err).__name__}: {err}")


def rich_status(error: JobError) -> grpc.Status:
    """A grpc.Status with google.rpc details naming the field (for context.abort_with_status)."""
    message = f"{error.field}: {error.message}" if error.field else error.message
    status = status_pb2.Status(code=error.code, message=message)
    detail: BadRequestOrQuota | None = None
    if error.status == "INVALID_ARGUMENT":
        detail = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=error.field,
                                                        description=error.message)])
    elif error.status == "RESOURCE_EXHAUSTED":
        detail = error_details_pb2.QuotaFailure(violations=[
            error_details_pb2.QuotaFailure.Violation(subject=error.field,
                                                     description=error.message)])
    if detail is not None:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return rpc_status.to_status(status)


BadRequestOrQuota = error_details_pb2.BadRequest | error_details_pb2.QuotaFailure
