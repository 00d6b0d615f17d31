"""Defaults shared by the server, the client and the serve command (import-light on purpose:
building the CLI parser must not import grpc)."""

DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
AUTH_ENV = "RELYSCOPE_AUTH_TOKEN"
REDIS_ENV = "RELYSCOPE_REDIS_URL"
#: scale-out (relyscope.service.jobs.celery_app): seconds before an unacknowledged job is
#: delivered again, and the Redis key prefix; here so `relyscope worker --help` needs no Celery
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
DEFAULT_REDIS_PREFIX = "relyscope:"
