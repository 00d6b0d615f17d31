"""The gRPC face of the service: the grpc.aio server, the servicers, admission and statuses."""
