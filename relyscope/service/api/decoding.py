"""Requests that do not parse end INVALID_ARGUMENT with the field named, in one log line.

Left to gRPC, a request the protobuf runtime cannot parse (invalid UTF-8 in a string field,
truncated bytes) raised inside the deserializer: the caller got UNKNOWN and the server logged
a traceback per request. Here the deserializer returns an `Undecodable` instead, and the
behaviour ends the call with a BadRequest naming the field (see wire.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

from relyscope.service.api.handlers import behavior_of, rebuild
from relyscope.service.api.wire import invalid_utf8_field
from relyscope.service.errors import JobError, rich_status

log = logging.getLogger("relyscope.service")


@dataclass(frozen=True)
class Undecodable:
    """What the deserializer returns for bytes that are not a valid request."""

    error: JobError


def request_descriptor(method: str) -> Descriptor | None:
    """The request message of a full method name such as /relyscope.v1.AuditService/Audit."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        return descriptor_pool.Default().FindServiceByName(service) \
            .methods_by_name[name].input_type
    except KeyError:
        return None


def undecodable(raw: bytes, descriptor: Descriptor, err: Exception) -> Undecodable:
    field = invalid_utf8_field(raw, descriptor)
    if field is not None:
        return Undecodable(JobError("INVALID_ARGUMENT", "not valid UTF-8 (string fields must "
                                                        "be UTF-8 text)", field))
    return Undecodable(JobError("INVALID_ARGUMENT", f"not a valid {descriptor.name} message "
                                                    f"({type(err).__name__})"))


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the request deserializer and behaviour of relyscope.v1 methods."""

    PREFIX = "/relyscope.v1."

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        descriptor = request_descriptor(details.method)
        if handler is None or not details.method.startswith(self.PREFIX) or descriptor is None:
            return handler
        parse = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            try:
                return parse(raw)
            except Exception as err:  # protobuf's DecodeError, or anything a parser raises
                return undecodable(raw, descriptor, err)

        inner = behavior_of(handler)
        method = details.method
        if handler.request_streaming:
            behavior = _checked_stream(inner, method, handler.response_streaming)
        else:
            behavior = _checked_unary(inner, method, handler.response_streaming)
        return rebuild(handler, behavior, deserialize)


async def refuse(context: grpc.aio.ServicerContext, method: str, bad: Undecodable) -> None:
    log.warning("%s refused: %s: %s", method, bad.error.field or "request", bad.error.message)
    await context.abort_with_status(rich_status(bad.error))


def _checked_unary(inner: Callable[..., Any], method: str, streaming: bool
                   ) -> Callable[..., Any]:
    if streaming:
        async def stream(request: Any, context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await refuse(context, method, request)
            async for item in inner(request, context):
                yield item
        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            await refuse(context, method, request)
        return await inner(request, context)
    return unary


def _checked_stream(inner: Callable[..., Any], method: str, streaming: bool
                    ) -> Callable[..., Any]:
    def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                ) -> AsyncIterator[Any]:
        async def each() -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Undecodable):
                    await refuse(context, method, request)
                yield request
        return each()

    if streaming:
        async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[Any]:
            async for item in inner(checked(requests, context), context):
                yield item
        return stream

    async def unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await inner(checked(requests, context), context)
    return unary
