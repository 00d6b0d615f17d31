"""`RedisJobs`: the async-job backend of scale-out mode (SubmitAudit/GetAudit/CancelAudit).

A job is a hash in Redis (job_store.py) plus a Celery message on the model's queue; `relyscope
worker` processes run it. Nothing about a job lives in the server process, so a restarted
server (or another replica) answers GetAudit for jobs it never saw. When Redis cannot be
reached, calls fail with UNAVAILABLE naming the URL; the server itself stays up.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import replace
from typing import Any

import redis
from kombu.exceptions import OperationalError

from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.service.errors import JobNotFound, ServiceError
from relyscope.service.jobs.celery_app import (
    AUDIT_TASK,
    DEFAULT_PREFIX,
    DEFAULT_VISIBILITY_TIMEOUT,
    make_app,
)
from relyscope.service.jobs.inprocess import Job, JobState
from relyscope.service.jobs.redis_store import JobStore

REDIS_ERRORS = (redis.RedisError, OperationalError, OSError)


class RedisUnavailable(ServiceError):
    def __init__(self, url: str, err: BaseException) -> None:
        super().__init__("UNAVAILABLE", f"the job store (Redis at {redact(url)}) cannot be "
                                        f"reached: {err}", "")


class RedisJobs:
    """Jobs as Celery tasks on Redis; `queue` is set once the served model is known."""

    def __init__(self, url: str, *, queue: str | None = None, prefix: str = DEFAULT_PREFIX,
                 ttl_seconds: int = 7 * 24 * 3600,
                 visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT) -> None:
        self.url = url
        self.queue = queue
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        self.store = JobStore(self.client, ttl_seconds)
        self.app = make_app(url, visibility_timeout=visibility_timeout)
        try:
            self.client.ping()
        except redis.RedisError as err:
            raise ConnectionError(f"cannot reach Redis at {redact(url)}: {err}") from None

    def key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def submit(self, case: Case, config: AuditConfig, *, request_id: str = "",
               deadline: float | None = None, **_: Any) -> Job:
        """Record the job, then publish it. `deadline` (time.monotonic()) travels as Unix time."""
        if self.queue is None:
            raise ServiceError("UNAVAILABLE", "the model is still loading; retry shortly")
        job_id = uuid.uuid4().hex
        key = self.key(job_id)
        wall_deadline = None if deadline is None else time.time() + deadline - time.monotonic()
        try:
            created = self.store.create(key, request_id, self.queue)
            self.app.send_task(
                AUDIT_TASK, task_id=job_id, queue=self.queue, routing_key=self.queue,
                retry=False,
                kwargs={"job_key": key, "ttl": self.store.ttl, "deadline": wall_deadline,
                        "case": case.model_dump(mode="json"),
                        "config": config.model_dump(mode="json")})
        except REDIS_ERRORS as err:
            raise RedisUnavailable(self.url, err) from None
        return Job(job_id=job_id, request_id=request_id, state=JobState.QUEUED,
                   created_at=created)

    def get(self, job_id: str) -> Job:
        try:
            job = self.store.job(self.key(job_id), job_id)
        except REDIS_ERRORS as err:
            raise RedisUnavailable(self.url, err) from None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def cancel(self, job_id: str) -> Job:
        """CANCELLED at once; a queued message is revoked, a running worker stops at its next
        method boundary (it reads the state there)."""
        job = self.get(job_id)
        if job.state.finished:
            return job
        try:
            self.store.finish(self.key(job_id), JobState.CANCELLED, by="cancel")
        except REDIS_ERRORS as err:
            raise RedisUnavailable(self.url, err) from None
        with contextlib.suppress(*REDIS_ERRORS):  # workers check the state before starting
            self.app.control.revoke(job_id)
        return replace(self.get(job_id), position=0)

    def close(self) -> None:
        self.client.close()


def redact(url: str) -> str:
    """The URL without a password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url
