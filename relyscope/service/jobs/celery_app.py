"""The Celery app of scale-out mode: Redis broker, late acks, one queue per model.

Late acknowledgement with a prefetch of one means a worker holds at most one unacknowledged
job; when it dies (even by SIGKILL) the message stays in Redis's unacked set and is delivered
again once the visibility timeout has passed. The visibility timeout must exceed the longest
audit, or a slow job is delivered to a second worker too (harmless: the job store lets only
the first result through, see job_store.py). Job state lives in the job store, not in
Celery's result backend, so tasks ignore their results.
"""

from __future__ import annotations

import re
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from relyscope.protocol.defaults import DEFAULT_REDIS_PREFIX as DEFAULT_PREFIX  # noqa: F401
from relyscope.protocol.defaults import DEFAULT_VISIBILITY_TIMEOUT

AUDIT_TASK = "relyscope.audit"


def queue_name(model_id: str) -> str:
    """`relyscope.<model id>`: workers with different models can share one Redis."""
    return "relyscope." + re.sub(r"[^A-Za-z0-9_.@-]+", "_", model_id).strip("_")


def make_app(redis_url: str, *, visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
             queue: str | None = None) -> Celery:
    """A Celery app on `redis_url`; `queue` is what a worker consumes (declared up front)."""
    app = Celery("relyscope", broker=redis_url, backend=redis_url)
    # how often kombu looks for unacked messages past the visibility timeout
    restore_every = max(1.0, min(10.0, visibility_timeout / 4))
    transport: dict[str, Any] = {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": restore_every,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 3,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_timeout=3,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    if queue is not None:
        app.conf.task_queues = [Queue(queue, Exchange(queue), routing_key=queue)]
    return app
