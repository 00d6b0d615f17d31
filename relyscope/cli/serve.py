"""`relyscope serve`: the gRPC service from the command line.

gRPC and the service are imported by the command only, so other commands start without them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from relyscope.cli.options import add_model_options, model_options
from relyscope.protocol.defaults import (
    AUTH_ENV,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_PORT,
    REDIS_ENV,
)

if TYPE_CHECKING:
    from relyscope.service.api.server import ServeOptions


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve_parser = sub.add_parser(
        "serve", help="run the gRPC AuditService/PipelineService",
        description="Serve relyscope.v1.AuditService (and PipelineService with --index) over "
                    "gRPC, with grpc.health.v1 health and server reflection.")
    serve_parser.add_argument("--host", default="127.0.0.1",
                              help="address to bind (default 127.0.0.1, this machine only; "
                                   "other interfaces warn without TLS and a token)")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                              help=f"default {DEFAULT_PORT}; 0: any free port")
    add_model_options(serve_parser)
    serve_parser.add_argument("--index", help="a FAISS index folder: enables PipelineService")
    serve_parser.add_argument("--queue-size", type=int, default=16,
                              help="audits queued or running at once; more are refused with "
                                   "RESOURCE_EXHAUSTED (default 16)")
    serve_parser.add_argument("--auth-token", default=os.environ.get(AUTH_ENV),
                              help=f"require 'authorization: Bearer TOKEN' (default: ${AUTH_ENV})")
    serve_parser.add_argument("--tls-cert", help="server certificate (PEM)")
    serve_parser.add_argument("--tls-key", help="server private key (PEM)")
    serve_parser.add_argument("--tls-client-ca", help="CA (PEM) that client certificates must "
                                                      "chain to: mutual TLS")
    serve_parser.add_argument("--max-message-mb", type=float,
                              default=DEFAULT_MAX_MESSAGE_BYTES / 2**20,
                              help="max request/response size in MiB (default 64)")
    serve_parser.add_argument("--deadline-margin", type=float, default=1.0,
                              help="seconds kept back from a call's deadline, at least "
                                   "(default 1.0; 10%% of the deadline when larger)")
    serve_parser.add_argument("--grace", type=float, default=10.0,
                              help="seconds in-flight calls get on shutdown (default 10)")
    serve_parser.add_argument("--redis-url", default=os.environ.get(REDIS_ENV),
                              help="scale-out: async jobs (SubmitAudit/GetAudit/CancelAudit) "
                                   "become Celery tasks on this Redis, run by `relyscope "
                                   f"worker` processes (default: ${REDIS_ENV})")
    serve_parser.add_argument("--job-queue", help="with --redis-url: the queue jobs go to "
                                                  "(default relyscope.<model id>)")
    serve_parser.add_argument("--job-ttl", type=int, default=7 * 24 * 3600,
                              help="with --redis-url: seconds job state and reports are kept "
                                   "(default 7 days)")
    serve_parser.set_defaults(func=_cmd_serve)


def options_from(args: argparse.Namespace) -> ServeOptions:
    from relyscope.service.api.server import ServeOptions

    if args.queue_size < 1:
        raise ValueError("--queue-size must be at least 1")
    return ServeOptions(host=args.host, port=args.port, model=args.model, index=args.index,
                        queue_size=args.queue_size, auth_token=args.auth_token or None,
                        tls_cert=args.tls_cert, tls_key=args.tls_key,
                        tls_client_ca=args.tls_client_ca,
                        max_message_bytes=int(args.max_message_mb * 2**20),
                        deadline_margin_s=args.deadline_margin, grace_s=args.grace,
                        redis_url=getattr(args, "redis_url", None) or None,
                        job_queue=getattr(args, "job_queue", None),
                        job_ttl_s=getattr(args, "job_ttl", 7 * 24 * 3600))


def _cmd_serve(args: argparse.Namespace) -> int:
    from relyscope.service.api.server import serve

    logging.basicConfig(level=logging.WARNING, format="relyscope serve: %(message)s")
    model = model_options(args)  # bad options fail before the port opens
    try:
        asyncio.run(serve(options_from(args), loader=model.load))
    except ConnectionError as err:  # Redis down at start: name the URL, exit non-zero
        print(f"relyscope serve: {err}", file=sys.stderr)
        return 1
    return 0
