"""In-process audit jobs: a bounded queue in front of the one thread that runs the model.

The model is not thread safe, so every piece of model work (loading included) runs on a
single worker thread, in submission order. The queue is bounded: when `queue_size` jobs are
already queued or running, `submit` raises `QueueFull` at once instead of letting callers
pile up behind a slow model. Unary, streaming and async audits all go through it, so one
bound covers them all.

`JobBackend` is the whole interface the service needs from a job store (submit, get, cancel);
a Redis/Celery backend can implement it later. `InProcessJobs` adds what only an in-process
executor can do: stream progress events and await completion.

Cancelling a queued job drops it; a running audit stops before its next model call (the
job's cancel event is the audit's `cancelled` check, asked between model calls), other work
at its next progress event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.errors import AuditCancelled
from relyscope.report_model import Report
from relyscope.service.errors import (
    JobCancelled,
    JobError,
    JobNotFound,
    QueueFull,
    classify,
)

log = logging.getLogger("relyscope.service")
Progress = Callable[[dict[str, Any]], None]
Work = Callable[[Progress], Any]
# (case, config, deadline, progress, cancelled=callable true once the job is cancelled)
AuditFn = Callable[..., Report]


class JobState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Job:
    """A snapshot of one job. Times are Unix seconds; `position` counts jobs ahead of it."""

    job_id: str
    request_id: str
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    methods_done: tuple[str, ...] = ()
    report: Report | None = None
    error: JobError | None = None
    position: int = 0


class JobBackend(Protocol):
    """What the service needs from a job store; a Redis/Celery backend can stand in."""

    def submit(self, case: Case, config: AuditConfig, *, request_id: str = "",
               deadline: float | None = None) -> Job: ...

    def get(self, job_id: str) -> Job: ...

    def cancel(self, job_id: str) -> Job: ...


@dataclass
class _Entry:
    job_id: str
    request_id: str
    work: Work
    deadline: float | None  # time.monotonic() value
    progress: Progress | None
    created_at: float = field(default_factory=time.time)
    state: JobState = JobState.QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    methods_done: list[str] = field(default_factory=list)
    result: Any = None
    error: JobError | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    cancel_at: float | None = None  # time.monotonic() of the cancel request while running
    done: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    ticket: int = 0


class InProcessJobs:
    """Bounded FIFO of jobs run one at a time on a single model thread."""

    def __init__(self, audit: AuditFn, *, queue_size: int = 16, keep_finished: int = 256
                 ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.keep_finished = keep_finished
        self._audit = audit
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="relyscope-model")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Entry] = OrderedDict()
        self._tickets = itertools.count()

    # -- the JobBackend interface ------------------------------------------------------------

    def submit(self, case: Case, config: AuditConfig, *, request_id: str = "",
               deadline: float | None = None, progress: Progress | None = None) -> Job:
        """Queue an audit; raises QueueFull when `queue_size` jobs are queued or running."""
        cancel = threading.Event()

        def work(emit: Progress) -> Report:
            return self._audit(case, config, deadline, emit, cancelled=cancel.is_set)
        return self.enqueue(work, request_id=request_id, deadline=deadline, progress=progress,
                            cancel=cancel)

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._snapshot(self._entry(job_id))

    def cancel(self, job_id: str) -> Job:
        with self._lock:
            entry = self._entry(job_id)
            if entry.state is JobState.QUEUED:
                self._finish(entry, JobState.CANCELLED)
            elif entry.state is JobState.RUNNING:
                entry.cancel_requested.set()
                entry.cancel_at = entry.cancel_at or time.monotonic()
            return self._snapshot(entry)

    # -- in-process extras ---------------------------------------------------------------------

    def enqueue(self, work: Work, *, request_id: str = "", deadline: float | None = None,
                progress: Progress | None = None, cancel: threading.Event | None = None
                ) -> Job:
        """Queue any model work (an audit, a pipeline question) under the same bound;
        `cancel` is set when the job is cancelled (work that polls it stops sooner)."""
        with self._lock:
            active = [e for e in self._jobs.values() if not e.state.finished]
            if len(active) >= self.queue_size:
                raise QueueFull(self.queue_size)
            entry = _Entry(job_id=uuid.uuid4().hex, request_id=request_id, work=work,
                           deadline=deadline, progress=progress, ticket=next(self._tickets),
                           cancel_requested=cancel or threading.Event())
            self._jobs[entry.job_id] = entry
            self._prune()
            snapshot = self._snapshot(entry, position=len(active))
        self._executor.submit(self._run, entry)
        return snapshot

    async def wait(self, job_id: str) -> Job:
        """Wait (without blocking the event loop) until the job is finished."""
        with self._lock:
            entry = self._entry(job_id)
        await asyncio.wrap_future(entry.done)
        with self._lock:
            return self._snapshot(entry)

    def result(self, job_id: str) -> Any:
        """What a finished job's work returned (a Report for audits)."""
        with self._lock:
            return self._entry(job_id).result

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run `fn` on the model thread outside the queue bound (model loading)."""
        return self._executor.submit(fn)

    def shutdown(self) -> None:
        """Cancel queued jobs, ask the running one to stop, and let the thread end."""
        with self._lock:
            for entry in self._jobs.values():
                if entry.state is JobState.QUEUED:
                    self._finish(entry, JobState.CANCELLED)
                elif entry.state is JobState.RUNNING:
                    entry.cancel_requested.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the model thread --------------------------------------------------------------------

    def _run(self, entry: _Entry) -> None:
        with self._lock:
            if entry.state is not JobState.QUEUED:
                return  # cancelled while queued
            if entry.deadline is not None and time.monotonic() >= entry.deadline:
                self._finish(entry, JobState.FAILED, error=JobError(
                    "DEADLINE_EXCEEDED", "the call's deadline passed while the job was queued"))
                return
            entry.state = JobState.RUNNING
            entry.started_at = time.time()

        def emit(event: dict[str, Any]) -> None:
            if entry.cancel_requested.is_set():
                raise JobCancelled()
            if event.get("event") == "method_finished":
                with self._lock:
                    entry.methods_done.append(str(event.get("method")))
            if entry.progress is not None:
                entry.progress(event)

        try:
            result = entry.work(emit)
        except (JobCancelled, AuditCancelled):
            with self._lock:
                self._finish(entry, JobState.CANCELLED)
            if entry.cancel_at is not None:  # how long the abandoned work held the model
                log.warning("job %s cancelled while running: stopped %.2fs after the cancel",
                            entry.job_id, time.monotonic() - entry.cancel_at)
        except Exception as err:  # the job fails, the worker goes on
            with self._lock:
                self._finish(entry, JobState.FAILED, error=classify(err))
        else:
            with self._lock:
                self._finish(entry, JobState.DONE, result=result)

    # -- bookkeeping (call with the lock held) ---------------------------------------------

    def _entry(self, job_id: str) -> _Entry:
        entry = self._jobs.get(job_id)
        if entry is None:
            raise JobNotFound(job_id)
        return entry

    def _finish(self, entry: _Entry, state: JobState, *, result: Any = None,
                error: JobError | None = None) -> None:
        entry.state = state
        entry.result = result
        entry.error = error
        entry.finished_at = time.time()
        entry.work = _spent  # drop the case and closures: only the result is kept
        entry.progress = None
        if not entry.done.done():
            entry.done.set_result(None)

    def _prune(self) -> None:
        finished = [e.job_id for e in self._jobs.values() if e.state.finished]
        for job_id in finished[:max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job_id]

    def _snapshot(self, entry: _Entry, position: int | None = None) -> Job:
        if position is None:
            position = sum(1 for e in self._jobs.values()
                           if not e.state.finished and e.ticket < entry.ticket
                           ) if entry.state is JobState.QUEUED else 0
        return Job(job_id=entry.job_id, request_id=entry.request_id, state=entry.state,
                   created_at=entry.created_at, started_at=entry.started_at,
                   finished_at=entry.finished_at, methods_done=tuple(entry.methods_done),
                   report=entry.result if isinstance(entry.result, Report) else None,
                   error=entry.error, position=position)


def _spent(emit: Progress) -> None:
    raise RuntimeError("this job has already run")
