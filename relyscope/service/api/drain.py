"""Draining on shutdown: refuse new calls, count the ones in flight, let health answer.

gRPC's own `server.stop(grace)` stops accepting every call at once, health checks included
(probes got CANCELLED). Until the grace period is over the server keeps running; this
interceptor refuses new calls with UNAVAILABLE while health checks still answer NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from relyscope.service.api.handlers import behavior_of, rebuild

SHUTTING_DOWN = "the server is shutting down; retry on another replica"


class DrainInterceptor(grpc.aio.ServerInterceptor):
    """Counts calls in flight; after `start_draining()` new calls end UNAVAILABLE."""

    OPEN = ("/grpc.health.v1.Health/",)

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._changed: asyncio.Condition | None = None

    def start_draining(self) -> None:
        self.draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight (True) or `timeout` seconds pass (False)."""
        condition = self._condition()
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(lambda: self.in_flight == 0),
                                       max(timeout, 0.0))
            except TimeoutError:
                return False
        return True

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(self.OPEN):
            return handler
        inner = behavior_of(handler)
        if inspect.isasyncgenfunction(inner):
            return rebuild(handler, self._streaming(inner))
        if inspect.iscoroutinefunction(inner):
            return rebuild(handler, self._unary(inner))
        return handler  # a synchronous handler: not counted (the servicers are all async)

    def _unary(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._enter(context)
            try:
                return await inner(request, context)
            finally:
                await self._leave()
        return behavior

    def _streaming(self, inner: Callable[..., AsyncIterator[Any]]
                   ) -> Callable[..., AsyncIterator[Any]]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[Any]:
            await self._enter(context)
            try:
                async for item in inner(request, context):
                    yield item
            finally:
                await self._leave()
        return behavior

    async def _enter(self, context: grpc.aio.ServicerContext) -> None:
        if self.draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        self.in_flight += 1

    async def _leave(self) -> None:
        condition = self._condition()
        async with condition:
            self.in_flight -= 1
            condition.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:  # made on the server's loop, at first use
            self._changed = asyncio.Condition()
        return self._changed
