"""Job state in Redis: one hash per job under `<prefix>job:<id>`, with a TTL.

Every state change is a Lua script, so it is atomic against other workers and the server:
`start` moves QUEUED (or RUNNING, for a redelivered job whose worker died) to RUNNING;
`finish` writes DONE/FAILED/CANCELLED only while the job is not finished yet, so a duplicate
delivery can never report a job twice, and counts every attempt in `finish_writes`, so a
duplicate that ran to the end shows; `progress` records a finished method and returns the
state, which is how a running worker learns that its job was cancelled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from relyscope.report_model import Report
from relyscope.service.errors import JobError
from relyscope.service.jobs.inprocess import Job, JobState

FINISHED = ("DONE", "FAILED", "CANCELLED")

_START = """
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return 'MISSING' end
if s == 'QUEUED' or s == 'RUNNING' then
  redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'started_at', ARGV[1], 'worker', ARGV[2],
             'methods_done', '[]')
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return s
"""

# `finish_writes` counts every attempt to write an outcome, the refused ones too, so a job whose
# outcome was reported twice (a duplicate delivery that ran to the end) shows 2; only the first
# attempt's outcome is stored.
_FINISH = """
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return 0 end
redis.call('HINCRBY', KEYS[1], 'finish_writes', 1)
if s == 'DONE' or s == 'FAILED' or s == 'CANCELLED' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2], 'report', ARGV[3],
           'error', ARGV[4], 'finished_by', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

_PROGRESS = """
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'RUNNING' then redis.call('HSET', KEYS[1], 'methods_done', ARGV[1]) end
return s or 'MISSING'
"""


@dataclass(frozen=True)
class JobStore:
    """Reads and atomic writes of job hashes; `ttl` seconds after the last write they expire."""

    client: redis.Redis
    ttl: int = 7 * 24 * 3600

    def create(self, key: str, request_id: str, queue: str) -> float:
        now = time.time()
        with self.client.pipeline() as pipe:
            pipe.hset(key, mapping={"state": "QUEUED", "request_id": request_id,
                                    "created_at": repr(now), "queue": queue,
                                    "methods_done": "[]", "attempts": 0, "finish_writes": 0})
            pipe.expire(key, self.ttl)
            pipe.execute()
        return now

    def start(self, key: str, worker: str) -> str:
        """The state before; the job is now RUNNING when that was QUEUED or RUNNING."""
        return _text(self.client.eval(_START, 1, key, repr(time.time()), worker, self.ttl))

    def finish(self, key: str, state: JobState, *, report: Report | None = None,
               error: JobError | None = None, by: str = "") -> bool:
        """True when this call wrote the outcome; False when the job was already finished."""
        report_json = json.dumps(report.to_dict(), separators=(",", ":")) if report else ""
        error_json = json.dumps(error.__dict__) if error else ""
        return bool(self.client.eval(_FINISH, 1, key, state.value, repr(time.time()),
                                     report_json, error_json, by, self.ttl))

    def progress(self, key: str, methods_done: list[str]) -> str:
        return _text(self.client.eval(_PROGRESS, 1, key, json.dumps(methods_done)))

    def raw(self, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.client.hgetall(key).items()}

    def job(self, key: str, job_id: str) -> Job | None:
        data = self.raw(key)
        return None if not data else job_from_hash(job_id, data)


def job_from_hash(job_id: str, data: dict[str, str]) -> Job:
    def seconds(name: str) -> float | None:
        return float(data[name]) if data.get(name) else None

    report = Report.from_dict(json.loads(data["report"])) if data.get("report") else None
    error = JobError(**json.loads(data["error"])) if data.get("error") else None
    return Job(job_id=job_id, request_id=data.get("request_id", ""),
               state=JobState(data["state"]), created_at=seconds("created_at") or 0.0,
               started_at=seconds("started_at"), finished_at=seconds("finished_at"),
               methods_done=tuple(json.loads(data.get("methods_done") or "[]")),
               report=report, error=error)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
