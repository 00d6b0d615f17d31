"""What a `relyscope worker` process does with one audit message.

The model is loaded once per process (in the process that runs tasks: the worker itself with
the solo pool, or each prefork child after the fork), with the Redis score cache attached so
every worker shares the forward passes any of them has done.

A message is run only when the job store says so (`start`): a cancelled or finished job is
acknowledged and dropped, a redelivered job whose worker died is run again. The outcome is
written with `finish`, which lets only the first outcome through.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery

from relyscope.case import Case, CaseError
from relyscope.config import AuditConfig
from relyscope.errors import AuditCancelled
from relyscope.service.errors import JobCancelled, JobError, classify
from relyscope.service.jobs.celery_app import AUDIT_TASK
from relyscope.service.jobs.inprocess import JobState
from relyscope.service.jobs.redis_store import JobStore

if TYPE_CHECKING:
    from relyscope.models import CausalLM
    from relyscope.models.loading import ModelOptions

log = logging.getLogger("relyscope.worker")


@dataclass
class WorkerSettings:
    """`model`: `ModelOptions`, or a model folder (None: the packaged model on the CPU)."""

    redis_url: str
    model: ModelOptions | str | None = None
    prefix: str = "relyscope:"
    cache_ttl: int = 7 * 24 * 3600
    name: str = ""


class WorkerRuntime:
    """The per-process model and Redis connection (created lazily, after any fork)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.name = settings.name or f"{socket.gethostname()}:{id(self):x}"
        self._lm: CausalLM | None = None
        self._client: redis.Redis | None = None

    @property
    def lm(self) -> CausalLM:
        if self._lm is None:
            from relyscope.models.cache import RedisScoreCache
            from relyscope.models.loading import ModelOptions

            options = ModelOptions.of(self.settings.model)
            cache = RedisScoreCache(self.settings.redis_url, ttl_seconds=self.settings.cache_ttl,
                                    prefix=f"{self.settings.prefix}score:")
            self._lm = options.load(cache=cache)
        return self._lm

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.settings.redis_url,
                                                socket_connect_timeout=3)
        return self._client

    def run(self, job_key: str, ttl: int, case: dict[str, Any], config: dict[str, Any],
            deadline: float | None) -> str:
        """Run one job; returns what happened (for logs)."""
        store = JobStore(self.client, ttl)
        before = store.start(job_key, self.name)
        if before not in ("QUEUED", "RUNNING"):
            return f"skipped ({before})"
        if before == "RUNNING":
            log.warning("job %s redelivered (its worker was lost); running it again", job_key)
        if deadline is not None and time.time() >= deadline:
            store.finish(job_key, JobState.FAILED, error=expired_error(), by=self.name)
            return "failed (deadline passed while queued)"
        try:
            report = self._audit(store, job_key, case, config, deadline)
        except (JobCancelled, AuditCancelled):
            return "cancelled"
        except Exception as err:  # the job fails, the worker goes on
            wrote = store.finish(job_key, JobState.FAILED, error=classify(err), by=self.name)
            return f"failed ({err})" if wrote else "failed (already finished)"
        wrote = store.finish(job_key, JobState.DONE, report=report, by=self.name)
        return "done" if wrote else "done (a duplicate: already finished)"

    def _audit(self, store: JobStore, job_key: str, case_data: dict[str, Any],
               config_data: dict[str, Any], deadline: float | None) -> Any:
        from relyscope.audits import run_audit

        case = Case.from_dict(case_data)
        config = AuditConfig.from_dict(config_data)
        done: list[str] = []

        def progress(event: dict[str, Any]) -> None:
            if event.get("event") not in ("method_started", "method_finished"):
                return
            if event["event"] == "method_finished":
                done.append(str(event.get("method")))
            if store.progress(job_key, done) != "RUNNING":
                raise JobCancelled()

        monotonic_deadline = None if deadline is None else \
            time.monotonic() + deadline - time.time()
        try:
            return run_audit(case, self.lm, config, progress=progress,
                             deadline=monotonic_deadline,
                             cancelled=_polled(lambda: store.raw(job_key).get("state")
                                               not in (None, "RUNNING")))
        except CaseError as err:
            raise CaseError(f"case.{err.field}" if err.field else "case", err.message) from None


def _polled(check: Callable[[], bool], every: float = 0.5) -> Callable[[], bool]:
    """`check` asked at most every `every` seconds (it reads Redis; the audit asks before
    each model call); true stays true."""
    last, answer = 0.0, False

    def cancelled() -> bool:
        nonlocal last, answer
        if not answer and time.monotonic() - last >= every:
            last, answer = time.monotonic(), check()
        return answer
    return cancelled


def register_task(app: Celery, runtime: Callable[[], WorkerRuntime]) -> None:
    """The audit task on `app`, run by whatever `runtime()` returns in this process."""

    @app.task(name=AUDIT_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def audit(job_key: str, ttl: int, case: dict[str, Any], config: dict[str, Any],
              deadline: float | None = None) -> str:
        outcome = runtime().run(job_key, ttl, case, config, deadline)
        log.info("%s: %s", job_key, outcome)
        return outcome


def expired_error() -> JobError:
    return JobError("DEADLINE_EXCEEDED", "the call's deadline passed while the job was queued")
