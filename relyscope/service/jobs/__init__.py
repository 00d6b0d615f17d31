"""The job machinery: the in-process queue, and in scale-out mode the Redis job store, the
Celery app and the worker that runs audit jobs."""
