"""Rebuilding a gRPC method handler with its behaviour or request decoding replaced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]


def rebuild(handler: grpc.RpcMethodHandler, behavior: Behavior,
            request_deserializer: Callable[[bytes], Any] | None = None
            ) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` running `behavior` instead."""
    codecs = {"request_deserializer": request_deserializer or handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(behavior, **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(behavior, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(behavior, **codecs)
    return grpc.stream_stream_rpc_method_handler(behavior, **codecs)


def behavior_of(handler: grpc.RpcMethodHandler) -> Behavior:
    return (handler.unary_unary or handler.unary_stream or handler.stream_unary
            or handler.stream_stream)
