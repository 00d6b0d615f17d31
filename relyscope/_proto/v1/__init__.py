"""Deprecated alias of `relyscope.v1` (the same module objects, not copies)."""

import sys

from relyscope.v1 import audit_pb2, audit_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc

__all__ = ["audit_pb2", "audit_pb2_grpc", "pipeline_pb2", "pipeline_pb2_grpc"]

for _module in (audit_pb2, audit_pb2_grpc, pipeline_pb2, pipeline_pb2_grpc):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
