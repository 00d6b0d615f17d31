"""AuditService and PipelineService: admission on the event loop, model work on the jobs.

Admission (everything that can fail fast) runs before a job is queued: the request's
parameters, the case and the config are validated with the field named; the case's token
count is checked against the token budget; the call's deadline becomes the audit's deadline
less a safety margin, so the runner cuts its plan and returns a partial report in time
instead of the call ending in DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc

from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig
from relyscope.limits import OverBudget, check_chars, check_tokens
from relyscope.protocol.convert import (
    case_from_proto,
    case_to_proto,
    config_from_proto,
    error_to_proto,
    event_to_proto,
    job_to_proto,
    parameters_from_proto,
    report_to_proto,
)
from relyscope.service.engine import Engine
from relyscope.service.errors import JobError, ServiceError, classify, rich_status
from relyscope.service.jobs.inprocess import InProcessJobs, Job, JobBackend, JobState
from relyscope.v1 import audit_pb2 as pb
from relyscope.v1 import audit_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc

T = TypeVar("T")

# name -> (proto oneof choices allowed, what to say when another is given)
PARAMETERS: dict[str, tuple[tuple[type, ...], str]] = {
    "max_tokens": ((int,), "an int64_param"),
    "parse_arguments": ((bool,), "a bool_param"),
    "deadline_margin_s": ((float, int), "a double_param"),
}
_END = object()


@dataclass
class ServiceState:
    """What the servicers share: the engine (None until the model is loaded) and the jobs."""

    jobs: InProcessJobs
    deadline_margin_s: float = 1.0
    # SubmitAudit/GetAudit/CancelAudit go here when set (scale-out: RedisJobs)
    async_jobs: JobBackend | None = None
    engine: Engine | None = None
    # one thread: it owns the engine's admission tokenizer (tokenizers are not thread safe)
    admission: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="relyscope-admission"))

    @property
    def job_backend(self) -> JobBackend:
        return self.async_jobs if self.async_jobs is not None else self.jobs

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise ServiceError("UNAVAILABLE", "the model is still loading; retry shortly "
                                              "(grpc.health.v1 says SERVING once it is ready)")
        return self.engine


@dataclass(frozen=True)
class Admitted:
    case: Case
    config: AuditConfig
    deadline: float | None


async def abort(context: grpc.aio.ServicerContext, err: BaseException | JobError) -> NoReturn:
    error = err if isinstance(err, JobError) else classify(err)
    await context.abort_with_status(rich_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def parameters(request: Any) -> dict[str, Any]:
    """The request's parameters, checked against the ones this server knows."""
    values = parameters_from_proto(request.parameters)
    for key, value in values.items():
        if key not in PARAMETERS:
            raise CaseError(f"parameters[{key}]",
                            f"unknown parameter (known: {', '.join(sorted(PARAMETERS))})")
        types, what = PARAMETERS[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise CaseError(f"parameters[{key}]", f"must be {what}")
    if values.get("max_tokens", 1) < 1:
        raise CaseError("parameters[max_tokens]", "must be at least 1")
    if values.get("deadline_margin_s", 0.0) < 0:
        raise CaseError("parameters[deadline_margin_s]", "must not be negative")
    return values


def audit_config(message: pb.AuditConfig | None) -> AuditConfig:
    """The request's config, its method names and settings checked against the registry."""
    from relyscope.audits.registry import validate_config  # lazy: loads the audit methods

    config = config_from_proto(message)
    validate_config(config)
    return config


def _within(prefix: str, convert: Callable[[Any], T], message: Any) -> T:
    try:
        return convert(message)
    except CaseError as err:
        raise CaseError(f"{prefix}.{err.field}" if err.field else prefix, err.message) from None


def call_deadline(context: grpc.aio.ServicerContext, params: dict[str, Any],
                  default_margin: float) -> float | None:
    """The call's deadline as a time.monotonic() value, less a safety margin."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    margin = params.get("deadline_margin_s", max(default_margin, 0.1 * remaining))
    return time.monotonic() + remaining - margin


def refuse_short_deadline(deadline: float | None) -> None:
    """A call deadline that leaves no time once the answer's margin is kept is refused at
    once (RESOURCE_EXHAUSTED naming `deadline`), not left to expire."""
    if deadline is not None and deadline <= time.monotonic():
        raise ServiceError("RESOURCE_EXHAUSTED",
                           "deadline too short: nothing is left for the audit once the "
                           "server's margin for sending the answer is kept (the margin is "
                           "parameters[deadline_margin_s], by default the larger of 1 s and "
                           "10% of the deadline)", "deadline")


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, state: ServiceState) -> None:
        self.state = state

    # -- admission -----------------------------------------------------------------------------

    async def admit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext,
                    *, call_bound: bool = True) -> Admitted:
        """Check the request. `call_bound`: the call's deadline becomes the audit's (not for
        SubmitAudit, whose job outlives the call: its limit is config.max_seconds)."""
        engine = self.state.require_engine()
        params = parameters(request)
        if not request.HasField("case"):
            raise CaseError("case", "required")
        case = _within("case", case_from_proto, request.case)
        config = _within("config", audit_config,
                         request.config if request.HasField("config") else None)
        if params.get("parse_arguments"):
            for call in case.tool_calls:
                _within("case", lambda c: c.parsed_arguments(), call)
        if not case.sources and not case.tool_calls:
            raise CaseError("case.sources", "nothing to audit: the case has no sources and no "
                                            "tool calls")
        deadline = (call_deadline(context, params, self.state.deadline_margin_s)
                    if call_bound else None)
        refuse_short_deadline(deadline)
        await self._check_tokens(engine, case, config, params)
        return Admitted(case, config, deadline)

    async def _check_tokens(self, engine: Engine, case: Case, config: AuditConfig,
                            params: dict[str, Any]) -> None:
        """The shared input budget: characters first (cheap), then tokens."""
        context_size = engine.lm.info.max_positions
        try:
            check_chars(case, context_size)
        except OverBudget as err:
            raise OverBudget("case", err.message) from None
        # tokenising a long case takes a while: not on the event loop, not on the model thread
        try:
            tokens = await asyncio.get_running_loop().run_in_executor(
                self.state.admission, engine.count_tokens, case, config)
        except ValueError as err:  # the case cannot be rendered for this model
            raise CaseError("case", str(err)) from None
        check_tokens(case, tokens, params.get("max_tokens"), "max_tokens",
                     "parameters[max_tokens]")
        check_tokens(case, tokens, context_size, field="case")

    def _submit(self, request: pb.AuditRequest, admitted: Admitted,
                progress: Callable[[dict[str, Any]], None] | None = None) -> Job:
        return self.state.jobs.submit(admitted.case, admitted.config, request_id=request.id,
                                      deadline=admitted.deadline, progress=progress)

    async def _wait(self, job_id: str) -> Job:
        """Wait for a job; a call cancelled by its client cancels the job too."""
        try:
            return await self.state.jobs.wait(job_id)
        except asyncio.CancelledError:
            self.state.jobs.cancel(job_id)
            raise

    @staticmethod
    def _failure(job: Job) -> JobError:
        return job.error or JobError("CANCELLED", f"job {job.job_id} was cancelled")

    # -- RPCs --------------------------------------------------------------------------------------

    async def Audit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext
                    ) -> pb.AuditResponse:
        try:
            job = self._submit(request, await self.admit(request, context))
        except (ServiceError, CaseError) as err:
            await abort(context, err)
        job = await self._wait(job.job_id)
        if job.state is not JobState.DONE or job.report is None:
            await abort(context, self._failure(job))
        return pb.AuditResponse(id=request.id, report=report_to_proto(job.report))

    async def StreamAudit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[pb.AuditEvent]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()

        def progress(event: dict[str, Any]) -> None:  # called on the model thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        try:
            job = self._submit(request, await self.admit(request, context), progress)
        except (ServiceError, CaseError) as err:
            await abort(context, err)
        yield pb.AuditEvent(id=request.id, queued=pb.Queued(job_id=job.job_id,
                                                            position=job.position))
        # the job's completion is signalled after every event it emitted (same thread, FIFO)
        waiter = asyncio.ensure_future(self._wait(job.job_id))
        waiter.add_done_callback(lambda _: events.put_nowait(_END))
        try:
            while (event := await events.get()) is not _END:
                message = event_to_proto(request.id, event)
                if message is not None:
                    yield message
        finally:
            if not waiter.done():
                waiter.cancel()
                self.state.jobs.cancel(job.job_id)
        job = waiter.result()
        if job.state is not JobState.DONE:
            await abort(context, self._failure(job))

    async def SubmitAudit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext
                          ) -> pb.JobResponse:
        try:  # the submitting call's deadline only bounds the submission, not the job
            admitted = await self.admit(request, context, call_bound=False)
            job = self.state.job_backend.submit(admitted.case, admitted.config,
                                                request_id=request.id,
                                                deadline=admitted.deadline)
        except (ServiceError, CaseError) as err:
            await abort(context, err)
        return pb.JobResponse(id=request.id, job=job_to_proto(job))

    async def GetAudit(self, request: pb.JobRequest, context: grpc.aio.ServicerContext
                       ) -> pb.JobResponse:
        try:
            job = self.state.job_backend.get(request.job_id)
        except ServiceError as err:
            await abort(context, err)
        return pb.JobResponse(id=request.id, job=job_to_proto(job))

    async def CancelAudit(self, request: pb.JobRequest, context: grpc.aio.ServicerContext
                          ) -> pb.JobResponse:
        try:
            job = self.state.job_backend.cancel(request.job_id)
        except ServiceError as err:
            await abort(context, err)
        return pb.JobResponse(id=request.id, job=job_to_proto(job))

    async def AuditBatch(self, request_iterator: AsyncIterator[pb.AuditRequest],
                         context: grpc.aio.ServicerContext) -> AsyncIterator[pb.AuditResponse]:
        """Cases one after another (one queue slot per stream); a bad case is an error
        response and the stream goes on."""
        async for request in request_iterator:
            try:
                job = self._submit(request, await self.admit(request, context))
            except (ServiceError, CaseError) as err:
                error = classify(err)
                if error.status == "UNAVAILABLE":
                    await abort(context, error)
                yield pb.AuditResponse(id=request.id, error=error_to_proto(error))
                continue
            job = await self._wait(job.job_id)
            if job.state is JobState.DONE and job.report is not None:
                yield pb.AuditResponse(id=request.id, report=report_to_proto(job.report))
            else:
                yield pb.AuditResponse(id=request.id, error=error_to_proto(self._failure(job)))


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    """Ask: retrieve, run tools, answer, audit inline. Needs --index and relyscope.pipeline."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def Ask(self, request: pipeline_pb2.AskRequest, context: grpc.aio.ServicerContext
                  ) -> pipeline_pb2.AskResponse:
        try:
            engine = self.state.require_engine()
            if engine.pipeline is None:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                    f"PipelineService.Ask is not available: "
                                    f"{engine.pipeline_unavailable}")
            params = parameters(request)
            if not request.query.strip():
                raise CaseError("query", "must not be empty")
            top_k = request.top_k if request.HasField("top_k") else 5
            if top_k < 0:
                raise CaseError("top_k", "must not be negative")
            audit = (_within("audit", audit_config, request.audit)
                     if request.HasField("audit") else None)
            tools = [(t.name, t.arguments) for t in request.tools]
            system = request.system if request.HasField("system") else None

            deadline = call_deadline(context, params, self.state.deadline_margin_s)
            refuse_short_deadline(deadline)
            cancel = threading.Event()  # set when the call goes away: the audit stops

            def work(_emit: Callable[[dict[str, Any]], None]) -> Any:
                return engine.ask(request.query, top_k, tools, audit, system,
                                  deadline=deadline, cancelled=cancel.is_set)

            job = self.state.jobs.enqueue(work, request_id=request.id, deadline=deadline,
                                          cancel=cancel)
        except (ServiceError, CaseError) as err:
            await abort(context, err)
        try:
            job = await self.state.jobs.wait(job.job_id)
        except asyncio.CancelledError:
            self.state.jobs.cancel(job.job_id)
            raise
        if job.state is not JobState.DONE:
            await abort(context, job.error or JobError("CANCELLED", "cancelled"))
        result = self.state.jobs.result(job.job_id)
        response = pipeline_pb2.AskResponse(id=request.id, case=case_to_proto(result.case),
                                            timings=result.timings)
        if result.report is not None:
            response.report.CopyFrom(report_to_proto(result.report))
        return response
