"""The grpc.aio server: servicers, health, reflection, auth, TLS, graceful shutdown.

The port opens at once with health NOT_SERVING; the model loads on the model thread and
health turns SERVING when it is ready (load balancers and `grpc_health_probe` wait on that).
On SIGTERM/SIGINT (see `RelyscopeServer.stop`) health flips to NOT_SERVING at once and new
calls are refused with UNAVAILABLE while health probes keep answering; in-flight calls get the
grace period, then the rest are cancelled. An audit still running on the model thread cannot
be interrupted mid-forward-pass, so `serve` does not wait for it: it logs that and ends the
process with os._exit once everything else is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from relyscope.protocol.defaults import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PORT
from relyscope.service.api.decoding import DecodingInterceptor
from relyscope.service.api.drain import DrainInterceptor
from relyscope.service.api.servicers import AuditServicer, PipelineServicer, ServiceState
from relyscope.service.engine import Engine, Loader, PipelineFactory
from relyscope.service.jobs.celery_app import queue_name
from relyscope.service.jobs.inprocess import InProcessJobs
from relyscope.v1 import audit_pb2, audit_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc

if TYPE_CHECKING:
    from relyscope.service.jobs.redis_backend import RedisJobs

log = logging.getLogger("relyscope.service")

AUDIT_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name
PIPELINE_SERVICE = pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"].full_name


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"  # other interfaces only when asked (deploy/ binds 0.0.0.0)
    port: int = DEFAULT_PORT  # 0: any free port (the bound one is returned by start())
    model: str | None = None
    index: str | None = None
    queue_size: int = 16
    auth_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    deadline_margin_s: float = 1.0
    grace_s: float = 10.0
    # scale-out: async jobs (SubmitAudit/GetAudit/CancelAudit) become Celery tasks on Redis
    redis_url: str | None = None
    job_queue: str | None = None  # default relyscope.<model id>, as `relyscope worker` uses
    job_ttl_s: int = 7 * 24 * 3600
    redis_prefix: str = "relyscope:"
    visibility_timeout_s: float = 3600.0


def message_size_options(max_bytes: int) -> list[tuple[str, int]]:
    """Explicit limits (gRPC's default receive limit is 4 MiB), for servers and channels."""
    return [("grpc.max_send_message_length", max_bytes),
            ("grpc.max_receive_message_length", max_bytes)]


def server_credentials(options: ServeOptions) -> grpc.ServerCredentials | None:
    """TLS from PEM files; with a client CA, mutual TLS (clients must present a cert)."""
    if not options.tls_cert and not options.tls_key:
        if options.tls_client_ca:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (options.tls_cert and options.tls_key):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    cert = Path(options.tls_cert).read_bytes()
    key = Path(options.tls_key).read_bytes()
    client_ca = Path(options.tls_client_ca).read_bytes() if options.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """`authorization: Bearer <token>` on every call except health checks."""

    OPEN = ("/grpc.health.v1.Health/",)

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(self.OPEN):
            return handler
        sent = dict(details.invocation_metadata or ()).get("authorization", "")
        if isinstance(sent, str) and hmac.compare_digest(sent.encode(), self._expected):
            return handler
        return _denying(handler)


def _denying(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call UNAUTHENTICATED."""
    async def deny(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            "missing or invalid bearer token (metadata 'authorization')")

    codecs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **codecs)
    return grpc.stream_stream_rpc_method_handler(deny, **codecs)


class RelyscopeServer:
    """One server: start() binds the port and starts loading the model in the background.

    `loader` replaces loading `options.model` (e.g. a model already in memory); `pipeline`
    builds the object PipelineService.Ask calls instead of one from `options.index`.
    """

    def __init__(self, options: ServeOptions, loader: Loader | None = None,
                 pipeline: PipelineFactory | None = None) -> None:
        self.options = options
        self._loader = loader
        self._pipeline = pipeline
        self.jobs = InProcessJobs(self._audit, queue_size=options.queue_size)
        self.redis_jobs = _redis_jobs(options)  # raises ConnectionError naming the URL
        self.state = ServiceState(self.jobs, deadline_margin_s=options.deadline_margin_s,
                                  async_jobs=self.redis_jobs)
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._loading: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self.drain = DrainInterceptor()

    def _audit(self, case: Any, config: Any, deadline: float | None, progress: Any,
               cancelled: Any = None) -> Any:
        return self.state.require_engine().audit(case, config, deadline, progress,
                                                 cancelled=cancelled)

    async def start(self) -> int:
        options = self.options
        credentials = server_credentials(options)  # fail on bad files before binding
        interceptors: list[grpc.aio.ServerInterceptor] = [self.drain]
        if options.auth_token:
            interceptors.append(BearerTokenInterceptor(options.auth_token))
        interceptors.append(DecodingInterceptor())
        server = grpc.aio.server(interceptors=interceptors,
                                 options=message_size_options(options.max_message_bytes))
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(self.state), server)
        pipeline_pb2_grpc.add_PipelineServiceServicer_to_server(PipelineServicer(self.state),
                                                                server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for service in ("", AUDIT_SERVICE, PIPELINE_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection(
            (AUDIT_SERVICE, PIPELINE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server)
        address = f"{options.host}:{options.port}"
        if credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        self._loading = asyncio.ensure_future(self._load())
        return self.port

    async def _load(self) -> None:
        options = self.options
        engine = await asyncio.wrap_future(self.jobs.call(
            lambda: Engine.load(options.model, options.index, self._loader, self._pipeline)))
        if self.redis_jobs is not None and self.redis_jobs.queue is None:
            self.redis_jobs.queue = queue_name(engine.model_info["id"])
        self.state.engine = engine
        log.info("model %s ready", engine.model_info)
        pipeline = health_pb2.HealthCheckResponse.SERVING if engine.pipeline is not None \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for service, status in (("", health_pb2.HealthCheckResponse.SERVING),
                                (AUDIT_SERVICE, health_pb2.HealthCheckResponse.SERVING),
                                (PIPELINE_SERVICE, pipeline)):
            await self.health.set(service, status)

    async def ready(self) -> None:
        """Wait until the model is loaded (raises what loading raised)."""
        assert self._loading is not None, "start() first"
        await asyncio.shield(self._loading)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: health NOT_SERVING and new calls refused at once; in-flight calls get
        `grace` seconds (default --grace); then the rest are cancelled and the port closed."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float | None) -> None:
        grace = self.options.grace_s if grace is None else grace
        started = time.monotonic()
        self.drain.start_draining()
        await self.health.enter_graceful_shutdown()
        log.warning("shutdown: health NOT_SERVING, refusing new calls; %d call(s) in flight, "
                    "%.1fs grace", self.drain.in_flight, grace)
        if self.drain.in_flight and not await self.drain.wait_idle(grace):
            log.warning("shutdown: grace over, cancelling %d call(s) in flight",
                        self.drain.in_flight)
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        self.jobs.shutdown()  # queued jobs cancelled, the running one asked to stop
        self.state.admission.shutdown(wait=False, cancel_futures=True)
        if self._server is not None:
            await self._server.stop(0)
        if self.redis_jobs is not None:
            self.redis_jobs.close()  # queued jobs stay in Redis for the next server
        log.warning("shutdown: port closed after %.1fs", time.monotonic() - started)

    async def wait_for_termination(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.wait_for_termination()


def _redis_jobs(options: ServeOptions) -> RedisJobs | None:
    if not options.redis_url:
        return None
    from relyscope.service.jobs.redis_backend import RedisJobs

    return RedisJobs(options.redis_url, queue=options.job_queue, prefix=options.redis_prefix,
                     ttl_seconds=options.job_ttl_s,
                     visibility_timeout=options.visibility_timeout_s)


def exposure_warning(options: ServeOptions) -> str | None:
    """A warning when the server listens beyond this machine without TLS or a token."""
    host = options.host.strip("[]")
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False  # a host name: it may resolve to any interface
    if local or (options.tls_cert and options.auth_token):
        return None
    missing = " and ".join(what for what, given in (("TLS", options.tls_cert),
                                                    ("a bearer token", options.auth_token))
                           if not given)
    return (f"WARNING: listening on {options.host}, beyond this machine, without {missing}: "
            f"anyone who can reach the port can use the service")


async def serve(options: ServeOptions, loader: Loader | None = None) -> None:
    """Run until SIGTERM/SIGINT; raises when the model fails to load.

    Ends the process itself (os._exit, after the port is closed and the logs flushed) when
    the model thread is still busy after shutdown, so --grace bounds the time to exit.
    """
    server = RelyscopeServer(options, loader)
    port = await server.start()
    log.warning("relyscope serving on %s:%d (%s, %s, %s); loading the model", options.host,
                port, "TLS" if options.tls_cert else "plaintext",
                "bearer auth" if options.auth_token else "no auth",
                f"async jobs on Redis {options.redis_url}" if options.redis_url
                else "in-process jobs")
    if (warning := exposure_warning(options)) is not None:
        log.warning("%s", warning)
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        log.warning("shutdown: %s received", signum.name)
        asyncio.ensure_future(server.stop())

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await server.ready()
    except asyncio.CancelledError:
        pass  # stopped while loading
    except Exception:
        await server.stop(0)
        raise
    else:
        log.warning("model loaded: SERVING")
    await server.wait_for_termination()
    await server.stop()
    _exit_if_busy()


def _exit_if_busy(wait_s: float = 0.25) -> None:
    """os._exit when a model or admission thread is still working (it would hold the process
    at interpreter exit until its audit ends, however long after the grace period)."""
    deadline = time.monotonic() + wait_s
    busy = [t for t in threading.enumerate()
            if t.name.startswith(("relyscope-model", "relyscope-admission"))]
    for thread in busy:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in busy):
        log.warning("shutdown: abandoning the work still running on the model thread; exiting")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    log.warning("shutdown: done")


class BackgroundServer:
    """A server on its own event loop thread: for tests, benchmarks and notebooks."""

    def __init__(self, options: ServeOptions, loader: Loader | None = None,
                 pipeline: PipelineFactory | None = None) -> None:
        self.server = RelyscopeServer(options, loader, pipeline)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="relyscope-grpc")

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def start(self, *, wait_ready: bool = True, timeout: float = 600.0) -> int:
        self._thread.start()
        port = self._call(self.server.start(), timeout)
        if wait_ready:
            self.wait_ready(timeout)
        return port

    def wait_ready(self, timeout: float = 600.0) -> None:
        self._call(self.server.ready(), timeout)

    def stop(self, grace: float = 1.0) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self.server.stop(grace), grace + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coroutine: Awaitable[Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
