"""Persistent score caches. Keys already name the model id, revision, exact token ids and target
(see ScoreItem.key), so one cache can serve many models and runs.

`SqliteScoreCache` keeps scores on disk between processes (CI gates re-running the same
evaluation, retries of offline audits). The in-memory LRU in scoring.py is the default.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from relyscope.models.scoring import TargetScore


def encode_score(score: TargetScore) -> bytes:
    return np.asarray(score.token_logprobs, dtype="<f8").tobytes()


def decode_score(blob: bytes) -> TargetScore:
    return TargetScore(tuple(float(x) for x in np.frombuffer(blob, dtype="<f8")))


class SqliteScoreCache:
    """A score cache in one SQLite file; safe across processes (WAL) and threads (a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value BLOB)")
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> list[TargetScore | None]:
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, value FROM scores WHERE key IN ({marks})",
                                        chunk)
                found.update(rows.fetchall())
        return [decode_score(found[k]) if k in found else None for k in keys]

    def put_many(self, items: dict[str, TargetScore]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)",
                                 [(k, encode_score(v)) for k, v in items.items()])
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisScoreCache:
    """Scores in Redis (scale-out mode): shared by every worker, entries expire after `ttl`."""

    def __init__(self, url: str, *, ttl_seconds: int = 7 * 24 * 3600,
                 prefix: str = "relyscope:score:") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.ttl = ttl_seconds
        self.prefix = prefix
        try:
            self.client.ping()
        except redis.RedisError as err:
            raise ConnectionError(f"cannot reach Redis at {url}: {err}") from None

    def get_many(self, keys: Sequence[str]) -> list[TargetScore | None]:
        if not keys:
            return []
        values = self.client.mget([self.prefix + k for k in keys])
        return [None if v is None else decode_score(v) for v in values]

    def put_many(self, items: dict[str, TargetScore]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for key, score in items.items():
                pipe.set(self.prefix + key, encode_score(score), ex=self.ttl)
            pipe.execute()
