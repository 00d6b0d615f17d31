"""`relyscope worker`: a Celery worker that holds one model and runs audit jobs from Redis.

With `--concurrency 1` (the default) the solo pool runs tasks in the worker process itself and
the model is loaded before the worker starts consuming. With more, a prefork pool is used and
each child loads its own model after the fork (never fork after loading a model).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from relyscope.cli.options import add_model_options, model_options
from relyscope.protocol.defaults import (
    DEFAULT_REDIS_PREFIX,
    DEFAULT_VISIBILITY_TIMEOUT,
    REDIS_ENV,
)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser(
        "worker", help="run audit jobs queued by `relyscope serve --redis-url`",
        description="A Celery worker on a Redis broker: loads the model once per process and "
                    "runs the audits queued for it, with a score cache shared through Redis.")
    worker.add_argument("--redis-url", default=os.environ.get(REDIS_ENV),
                        help=f"redis://host:port/db (default: ${REDIS_ENV})")
    add_model_options(worker, model_help="; give it exactly as `serve --model` does: it "
                                         "names the queue")
    worker.add_argument("--queue", help="queue to consume (default: relyscope.<model id>)")
    worker.add_argument("--concurrency", type=int, default=1,
                        help="audits at once, each in its own process with its own model "
                             "(default 1)")
    worker.add_argument("--name", help="worker node name (default relyscope-<pid>@<host>)")
    worker.add_argument("--visibility-timeout", type=float, default=DEFAULT_VISIBILITY_TIMEOUT,
                        help="seconds before an unacknowledged job is delivered again; longer "
                             "than the longest audit (default 3600)")
    worker.add_argument("--prefix", default=DEFAULT_REDIS_PREFIX,
                        help="Redis key prefix of the score cache "
                             f"(default {DEFAULT_REDIS_PREFIX!r})")
    worker.add_argument("--cache-ttl", type=int, default=7 * 24 * 3600,
                        help="seconds scores stay in the Redis cache (default 7 days)")
    worker.add_argument("--torch-threads", type=int,
                        help="torch threads per process (default: torch's, all cores); give "
                             "cores / workers when several workers share a machine")
    worker.add_argument("--loglevel", default="WARNING")
    worker.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    # imported here: torch, Celery and the service start no other command
    import torch
    from celery import signals

    from relyscope.service.jobs.celery_app import make_app, queue_name
    from relyscope.service.jobs.worker import WorkerRuntime, WorkerSettings, register_task

    logging.basicConfig(level=args.loglevel.upper(), format="relyscope worker: %(message)s")
    if not args.redis_url:
        print(f"relyscope worker: --redis-url (or ${REDIS_ENV}) is required", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("relyscope worker: --concurrency must be at least 1", file=sys.stderr)
        return 2
    model = model_options(args)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    name = args.name or f"relyscope-{os.getpid()}@%h"
    settings = WorkerSettings(redis_url=args.redis_url, model=model, prefix=args.prefix,
                              cache_ttl=args.cache_ttl,
                              name=name.replace("%h", socket.gethostname()))
    runtime = WorkerRuntime(settings)
    solo = args.concurrency == 1
    queue = args.queue or queue_name(model.model_id)
    try:
        if solo:
            runtime.lm  # noqa: B018 - load now, in the process that runs the tasks
    except ConnectionError as err:  # RedisScoreCache names the URL
        print(f"relyscope worker: {err}", file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"relyscope worker: {err}", file=sys.stderr)
        return 2

    app = make_app(args.redis_url, visibility_timeout=args.visibility_timeout, queue=queue)
    register_task(app, lambda: runtime)

    @signals.worker_process_init.connect
    def _fresh_runtime(**_: object) -> None:  # prefork child: own connections, own model
        nonlocal runtime
        runtime = WorkerRuntime(settings)
        runtime.lm  # noqa: B018 - load the model in the child, after the fork

    @signals.worker_ready.connect
    def _ready(**_: object) -> None:
        runtime.client.set(f"{args.prefix}worker:{settings.name}", queue, ex=3600)

    print(f"relyscope worker {settings.name}: consuming {queue} on {args.redis_url}",
          file=sys.stderr, flush=True)
    argv = ["worker", "-Q", queue, "-n", name, "-c", str(args.concurrency),
            "-P", "solo" if solo else "prefork", "--loglevel", args.loglevel.upper(),
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.worker_main(argv)
    return 0

