"""Scale-out against the real Redis on 127.0.0.1:6379 (DB 9) and real `relyscope worker`
processes: jobs spread over workers, survive a SIGKILLed worker and a server restart, repeat
audits come from the Redis score cache, and Redis being down or lost is reported clearly.

Each run uses its own key prefix and queue names and deletes what it wrote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from relyscope.case import Case
from relyscope.client import Client, ServiceCallError
from relyscope.config import AuditConfig
from relyscope.report_model import Report
from relyscope.service.api.server import BackgroundServer, ServeOptions
from tests.service_support import FAST, five_source_case

redis = pytest.importorskip("redis")

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/9"
RUN = uuid.uuid4().hex[:8]
PREFIX = f"relyscope-test-{RUN}:"
QUEUE = f"relyscope.test-{RUN}"
VISIBILITY_S = 8.0  # short, so a SIGKILLed worker's job comes back within ~10-20 s
W1, W2, W3 = (f"w{n}-{RUN}" for n in (1, 2, 3))
QUESTIONS = ["Who founded the Zelk guild?", "When does the Orrin river flood?",
             "What do Tidewater lighthouses use?", "What rose in the northern markets?"]


def _redis() -> Any:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as err:
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    return client


@pytest.fixture(scope="module")
def rdb() -> Iterator[Any]:
    client = _redis()
    yield client
    keys = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
    job_ids = [k.decode().rsplit(":", 1)[1] for k in keys if b":job:" in k]
    keys += [f"celery-task-meta-{j}" for j in job_ids]  # a revoked task's state
    for queue in (QUEUE, f"{QUEUE}.restart", f"{QUEUE}.lost"):
        keys += [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    client.delete(*keys)
    pidbox = "_kombu.binding.celery.pidbox"  # remote-control bindings of this run's workers
    ours = [m for m in client.smembers(pidbox) if RUN.encode() in m]
    if ours:
        client.srem(pidbox, *ours)


@pytest.fixture(scope="module")
def model_dir(tiny_lm: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama on disk: workers and the embedded server load the same folder."""
    folder = tmp_path_factory.mktemp("scaleout") / "tiny-llama"
    tiny_lm.model.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    return folder


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


@dataclass
class Workers:
    """`relyscope worker` subprocesses, killed in teardown."""

    model: Path
    logs: Path
    rdb: Any
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, queue: str = QUEUE) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "relyscope", "worker", "--redis-url", REDIS_URL,
             "--model", str(self.model), "--queue", queue, "--name", name,
             "--visibility-timeout", str(VISIBILITY_S), "--prefix", PREFIX,
             "--loglevel", "INFO"], cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, *names: str, timeout: float = 120.0) -> None:
        give_up = time.monotonic() + timeout
        for name in names:
            while not self.rdb.exists(f"{PREFIX}worker:{name}"):
                proc = self.procs[name]
                assert proc.poll() is None, f"worker {name} exited: {self.log(name)}"
                assert time.monotonic() < give_up, f"worker {name} not ready: {self.log(name)}"
                time.sleep(0.2)

    def ensure(self, *names: str) -> None:
        """These workers running (restarting any that died)."""
        for name in names:
            if name not in self.procs or self.procs[name].poll() is not None:
                self.rdb.delete(f"{PREFIX}worker:{name}")
                self.start(name)
        self.wait_ready(*names)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-3000:]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)


@pytest.fixture(scope="module")
def workers(model_dir: Path, rdb: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Workers]:
    pool = Workers(model_dir, tmp_path_factory.mktemp("worker-logs"), rdb)
    for name in (W1, W2):
        pool.start(name)
    try:
        yield pool
    finally:
        pool.stop_all()


def _server(model_dir: Path, **options: Any) -> BackgroundServer:
    defaults: dict[str, Any] = {"redis_url": REDIS_URL, "job_queue": QUEUE,
                                "redis_prefix": PREFIX, "visibility_timeout_s": VISIBILITY_S}
    server = BackgroundServer(ServeOptions(host="127.0.0.1", port=0, model=str(model_dir),
                                           **{**defaults, **options}))
    server.start()
    return server


@pytest.fixture(scope="module")
def scaled(model_dir: Path, rdb: Any) -> Iterator[BackgroundServer]:
    server = _server(model_dir)
    yield server
    server.stop(grace=0.5)


def _record(rdb: Any, job_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in rdb.hgetall(f"{PREFIX}job:{job_id}").items()}


def _cases(count: int, tag: str) -> list[Case]:
    return [five_source_case(f"{tag}-{i}", query=QUESTIONS[i % len(QUESTIONS)])
            for i in range(count)]


def _comparable(report: Report) -> dict[str, Any]:
    """What an audit concluded (not how long it took or where it ran)."""
    return {"case_id": report.case_id, "answer_logprob": report.answer_logprob,
            "units": [u.model_dump() for u in report.units], "verdicts": report.verdicts,
            "faithfulness": report.faithfulness, "partial": report.partial,
            "errors": report.errors}


def _slow_case() -> Case:
    """Forty passages and 48 ablation masks: a few seconds on the tiny model."""
    return Case.from_dict({
        "id": "slow", "query": "Who founded the Zelk guild?", "answer": "Anna Roth founded it.",
        "sources": [{"id": f"s{i}", "text": f"Passage {i} says the Zelk guild keeps ledger "
                                            f"number {i * 7} in Mirel ({RUN})."}
                    for i in range(40)]})


SLOW = AuditConfig(methods=("ablation",), ablations=48, lds_masks=0)


# -- tests ------------------------------------------------------------------------------------


def test_every_outcome_write_is_counted_and_only_the_first_is_stored(rdb):
    """Two deliveries of one job both run to the end (a redelivery while the first worker
    still runs): `finish_writes` must show 2, so the tests below that require 1 can fail."""
    from relyscope.service.jobs.inprocess import JobState
    from relyscope.service.jobs.redis_store import JobStore

    store = JobStore(rdb, ttl=600)
    key = f"{PREFIX}job:twice-{RUN}"
    store.create(key, "req-twice", QUEUE)
    assert store.start(key, "first") == "QUEUED"
    assert store.start(key, "second") == "RUNNING"  # redelivered while still running
    first = Report(case_id="twice", answer="from the first", answer_logprob=-1.0,
                   answer_tokens=3)
    second = Report(case_id="twice", answer="from the second", answer_logprob=-2.0,
                    answer_tokens=3)
    assert store.finish(key, JobState.DONE, report=first, by="first") is True
    assert store.finish(key, JobState.DONE, report=second, by="second") is False
    assert store.finish(key, JobState.CANCELLED, by="cancel") is False
    record = _record(rdb, "twice-" + RUN)
    assert (record["finish_writes"], record["attempts"]) == ("3", "2")
    assert (record["state"], record["finished_by"]) == ("DONE", "first")
    job = store.job(key, "twice")
    assert job is not None and job.report is not None
    assert job.report.answer == "from the first"  # written once: the first outcome stays
    assert store.finish(f"{PREFIX}job:missing-{RUN}", JobState.DONE, by="x") is False
    assert not rdb.exists(f"{PREFIX}job:missing-{RUN}")  # no hash conjured for a missing job


def test_twenty_jobs_are_shared_by_two_workers_and_match_embedded_mode(
        scaled, workers, model_dir, rdb):
    workers.ensure(W1, W2)
    cases = _cases(20, "spread")
    with Client(f"127.0.0.1:{scaled.port}") as client:
        ids = [client.submit(case, FAST) for case in cases]
        done = [client.wait(job_id, timeout=120) for job_id in ids]
    assert [d.state for d in done] == ["DONE"] * 20
    records = [_record(rdb, job_id) for job_id in ids]
    assert {r["finished_by"] for r in records} == {W1, W2}  # both workers took some
    assert all(r["finish_writes"] == "1" and r["attempts"] == "1" for r in records)

    embedded = BackgroundServer(ServeOptions(host="127.0.0.1", port=0, model=str(model_dir)))
    embedded.start()
    try:
        with Client(f"127.0.0.1:{embedded.port}") as client:
            local = [client.wait(client.submit(case, FAST), timeout=120) for case in cases]
    finally:
        embedded.stop(grace=0.5)
    assert [_comparable(d.report) for d in done] == [_comparable(x.report) for x in local]


def test_a_sigkilled_workers_job_completes_on_the_other_once(scaled, workers, rdb):
    workers.ensure(W1, W2)
    with Client(f"127.0.0.1:{scaled.port}") as client:
        slow = client.submit(_slow_case(), SLOW)
        give_up = time.monotonic() + 30
        while (record := _record(rdb, slow)).get("state") != "RUNNING":
            assert time.monotonic() < give_up, f"never started: {record}"
            time.sleep(0.05)
        victim = record["worker"]
        workers.kill(victim)  # SIGKILL while it holds the job (unacknowledged)
        others = [client.submit(case, FAST) for case in _cases(4, "after-kill")]
        status = client.wait(slow, timeout=90)
        rest = [client.wait(job_id, timeout=60) for job_id in others]
    assert status.state == "DONE" and status.report is not None
    assert not status.report.partial
    record = _record(rdb, slow)
    survivor = ({W1, W2} - {victim}).pop()
    assert record["finished_by"] == survivor
    assert int(record["attempts"]) >= 2  # delivered again (the first delivery died) ...
    assert record["finish_writes"] == "1"  # ... reported once
    assert [r.state for r in rest] == ["DONE"] * 4
    assert all(_record(rdb, j)["finish_writes"] == "1" for j in others)


def test_a_restarted_server_still_finds_queued_jobs(model_dir, workers, rdb):
    queue = f"{QUEUE}.restart"  # no worker consumes it until after the restart
    first = _server(model_dir, job_queue=queue)
    try:
        with Client(f"127.0.0.1:{first.port}") as client:
            ids = [client.submit(case, FAST) for case in _cases(3, "restart")]
            cancelled = client.submit(five_source_case("restart-cancelled"), FAST)
            assert {client.get(j).state for j in ids} == {"QUEUED"}
            assert client.cancel(cancelled).state == "CANCELLED"
    finally:
        first.stop(grace=0.5)
    second = _server(model_dir, job_queue=queue)
    try:
        with Client(f"127.0.0.1:{second.port}") as client:
            assert [client.get(j).state for j in ids] == ["QUEUED"] * 3
            workers.start(W3, queue)
            workers.wait_ready(W3)
            done = [client.wait(j, timeout=90) for j in ids]
            assert client.get(cancelled).state == "CANCELLED"
    finally:
        second.stop(grace=0.5)
        workers.kill(W3)
    assert [d.state for d in done] == ["DONE"] * 3
    assert all(d.report is not None and d.report.case_id.startswith("restart-") for d in done)
    record = _record(rdb, cancelled)  # the worker saw the cancel and never ran it
    assert record["attempts"] == "0" and record["finished_by"] == "cancel"


def test_a_repeated_audit_is_served_from_the_redis_score_cache(scaled, workers):
    workers.ensure(W1, W2)
    case = five_source_case("cached", query=f"Which guild did Anna Roth found? ({RUN})")
    loo = AuditConfig(methods=("loo",))
    with Client(f"127.0.0.1:{scaled.port}") as client:
        first = client.wait(client.submit(case, loo), timeout=60).report
        second = client.wait(client.submit(case, loo), timeout=60).report
    assert first is not None and second is not None
    assert first.cost["cache_misses"] > 0
    assert second.cost["cache_misses"] == 0 and second.cost["cache_hits"] > 0
    assert second.cost["forward_passes"] <= 1
    assert _comparable(second) == _comparable(first)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_at_start_is_a_clear_error(model_dir):
    url = f"redis://127.0.0.1:{_free_port()}/0"
    for command in (["serve", "--port", "0", "--model", str(model_dir)],
                    ["worker", "--model", str(model_dir)]):
        done = subprocess.run([sys.executable, "-m", "relyscope", *command,
                               "--redis-url", url], cwd=ROOT, env=_env(), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1, done.stderr[-2000:]
        assert f"cannot reach Redis at {url}" in done.stderr


def test_redis_lost_mid_run_fails_jobs_visibly_and_the_server_stays_up(model_dir, rdb):
    port = _free_port()
    redis_server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                     "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        throwaway = redis.Redis(port=port)
        give_up = time.monotonic() + 10
        while True:
            try:
                throwaway.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < give_up, "redis-server did not start"
                time.sleep(0.1)
        url = f"redis://127.0.0.1:{port}/0"
        server = _server(model_dir, redis_url=url, job_queue=f"{QUEUE}.lost")
        try:
            with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
                job_id = client.submit(five_source_case("lost"), FAST)
                assert client.get(job_id).state == "QUEUED"
                redis_server.kill()
                redis_server.wait(10)
                for call in (lambda: client.get(job_id),
                             lambda: client.submit(five_source_case("lost2"), FAST)):
                    with pytest.raises(ServiceCallError) as failed:
                        call()
                    assert failed.value.code.name == "UNAVAILABLE"
                    assert f"Redis at {url}" in failed.value.message
                assert client.health() == "SERVING"
                report = client.audit(five_source_case("still-up"), FAST)  # in-process
                assert report.case_id == "still-up"
        finally:
            server.stop(grace=0.5)
    finally:
        if redis_server.poll() is None:
            redis_server.kill()
            redis_server.wait(10)
