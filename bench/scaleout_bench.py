"""Scale-out on Redis + Celery: throughput with 1 and 2 workers, cache hits, redelivery.

    python bench/scaleout_bench.py [--jobs 10] [--redis-url redis://127.0.0.1:6379/9]

Runs a gRPC server in this process (`--redis-url` mode, the packaged model; it only admits
jobs) and `python -m relyscope worker` processes with the packaged model. Every job
audits a distinct 5-source case with attention + leave-one-out (the query names this run, so
nothing comes from the score cache unless asked for).

- throughput: audits per minute over --jobs jobs submitted at once: 1 worker with all cores,
  1 worker with half of them, 2 workers with half each.
  One worker uses every core; two split them (--torch-threads cores/2 each). On a 2-core
  box two workers cannot double throughput.
- cache: the same audit twice; the speed-up of the second (served from the Redis score
  cache) over the first, end to end and in the report's own seconds.
- redelivery: a longer job (ablation) whose worker is SIGKILLed while it runs; the seconds
  from the kill until the other worker starts it again and until it is done. This is the
  visibility timeout (--visibility-timeout) plus up to kombu's restore interval.

Prints a table and writes bench/results/scaleout.json. Uses its own key prefix and queue.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relyscope.case import Case  # noqa: E402
from relyscope.config import AuditConfig  # noqa: E402

CONFIG = AuditConfig(methods=("attention", "loo"))
SLOW = AuditConfig(methods=("ablation",), ablations=64, lds_masks=0)
SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt."),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel."),
    ("d2", "Copper prices rose sharply in the northern markets last year."),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns."),
    ("d4", "Tidewater lighthouses use rotating lenses to guide ships at night."),
]


def case(tag: str, number: int, sources: int = 5) -> Case:
    texts = SOURCES * (sources // len(SOURCES) + 1)
    return Case.from_dict({
        "id": f"{tag}-{number}", "query": f"Who founded the Zelk guild? (run {tag}, #{number})",
        "system": "Answer the question in one sentence using the context.",
        "sources": [{"id": f"d{i}", "text": text} for i, (_, text) in
                    enumerate(texts[:sources])],
        "answer": "The Zelk guild was founded by Anna Roth."})


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import redis

        self.args = args
        self.run = uuid.uuid4().hex[:8]
        self.prefix = f"relyscope-bench-{self.run}:"
        self.queue = f"relyscope.bench-{self.run}"
        self.rdb = redis.Redis.from_url(args.redis_url)
        self.workers: dict[str, subprocess.Popen] = {}
        self.logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"scaleout-bench-{self.run}"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- processes -------------------------------------------------------------------------

    def start_worker(self, name: str, threads: int | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
        log = (self.logs / f"{name}.log").open("w")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "relyscope", "worker", "--redis-url",
             self.args.redis_url, "--queue", self.queue, "--name", name, "--prefix", self.prefix,
             "--visibility-timeout", str(self.args.visibility_timeout),
             *(["--torch-threads", str(threads)] if threads else [])],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        give_up = time.monotonic() + 300
        while not self.rdb.exists(f"{self.prefix}worker:{name}"):
            if self.workers[name].poll() is not None or time.monotonic() > give_up:
                raise RuntimeError(f"worker {name} did not start: see {self.logs}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        proc = self.workers[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def record(self, job_id: str) -> dict[str, str]:
        return {k.decode(): v.decode()
                for k, v in self.rdb.hgetall(f"{self.prefix}job:{job_id}").items()}

    # -- measurements ----------------------------------------------------------------------------

    def throughput(self, client: Any, tag: str) -> dict[str, Any]:
        cases = [case(f"{self.run}-{tag}", i) for i in range(self.args.jobs)]
        started = time.perf_counter()
        ids = [client.submit(c, CONFIG) for c in cases]
        done = [client.wait(j, timeout=1800) for j in ids]
        wall = time.perf_counter() - started
        assert all(d.state == "DONE" for d in done), [d.error for d in done]
        by_worker: dict[str, int] = {}
        records = [self.record(job_id) for job_id in ids]
        for record in records:
            by_worker[record["finished_by"]] = by_worker.get(record["finished_by"], 0) + 1
        return {"jobs": len(ids), "wall_s": round(wall, 2),
                "audits_per_minute": round(60 * len(ids) / wall, 1), "by_worker": by_worker,
                # a job running past the visibility timeout is delivered again (run twice,
                # reported once): a sign the timeout is too short for this machine's load
                "delivered_again": sum(int(r["attempts"]) > 1 for r in records),
                "max_outcome_writes": max(int(r["finish_writes"]) for r in records)}

    def cache(self, client: Any) -> dict[str, Any]:
        same = case(f"{self.run}-cache", 0)
        timings, reports = [], []
        for _ in range(2):
            started = time.perf_counter()
            status = client.wait(client.submit(same, CONFIG), poll=0.05, timeout=600)
            timings.append(time.perf_counter() - started)
            reports.append(status.report)
        first, second = reports
        return {"first_s": round(timings[0], 3), "second_s": round(timings[1], 3),
                "speedup_end_to_end": round(timings[0] / timings[1], 2),
                "first_audit_s": round(first.cost["seconds"], 3),
                "second_audit_s": round(second.cost["seconds"], 3),
                "speedup_audit": round(first.cost["seconds"] / second.cost["seconds"], 2),
                "second_cache_hits": second.cost["cache_hits"],
                "second_cache_misses": second.cost["cache_misses"],
                "note": "attention needs its own pass with attention weights, which the score "
                        "cache does not hold; leave-one-out scores all come from the cache"}

    def redelivery(self, client: Any) -> dict[str, Any]:
        job_id = client.submit(case(f"{self.run}-slow", 0, sources=10), SLOW)
        while (record := self.record(job_id)).get("state") != "RUNNING":
            time.sleep(0.05)
        victim = record["worker"]
        time.sleep(0.5)
        self.kill(victim)
        killed_at = time.time()
        while (record := self.record(job_id)).get("worker") == victim:
            time.sleep(0.05)
        restarted_s = float(record["started_at"]) - killed_at
        status = client.wait(job_id, poll=0.1, timeout=1800)
        record = self.record(job_id)
        return {"visibility_timeout_s": self.args.visibility_timeout,
                "killed": victim, "finished_by": record["finished_by"],
                "attempts": int(record["attempts"]), "finish_writes": int(record["finish_writes"]),
                "kill_to_restart_s": round(restarted_s, 2),
                "kill_to_done_s": round(float(record["finished_at"]) - killed_at, 2),
                "state": status.state}

    def cleanup(self) -> None:
        for name in list(self.workers):
            self.kill(name)
        keys = list(self.rdb.scan_iter(match=f"{self.prefix}*", count=1000))
        keys += [self.queue, f"_kombu.binding.{self.queue}",
                 f"_kombu.binding_permanent.{self.queue}"]
        self.rdb.delete(*keys)
        pidbox = "_kombu.binding.celery.pidbox"  # remote-control bindings of this run's workers
        ours = [m for m in self.rdb.smembers(pidbox) if self.run.encode() in m]
        if ours:
            self.rdb.srem(pidbox, *ours)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--visibility-timeout", type=float, default=60.0,
                        help="longer than any audit here, or jobs run twice (default 60)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scaleout.json"))
    args = parser.parse_args()

    from relyscope.client import Client
    from relyscope.service.api.server import BackgroundServer, ServeOptions

    bench = Bench(args)
    threads = max(1, (os.cpu_count() or 2) // 2)
    server = BackgroundServer(ServeOptions(
        host="127.0.0.1", port=0, redis_url=args.redis_url, job_queue=bench.queue,
        redis_prefix=bench.prefix, visibility_timeout_s=args.visibility_timeout))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_start": os.getloadavg()[0]},
        "config": {"methods": list(CONFIG.methods), "model": "packaged (SmolLM2-135M-Instruct)",
                   "jobs": args.jobs}}
    try:
        server.start()
        with Client(f"127.0.0.1:{server.port}") as client:
            bench.start_worker(f"bench-w1-{bench.run}")
            client.wait(client.submit(case(f"{bench.run}-warm", 0), CONFIG), timeout=600)
            results["one_worker"] = bench.throughput(client, "one")
            # two workers split the cores (one torch thread pool each would oversubscribe);
            # one worker with the same share is the like-for-like baseline
            bench.kill(f"bench-w1-{bench.run}")
            bench.start_worker(f"bench-w1b-{bench.run}", threads)
            client.wait(client.submit(case(f"{bench.run}-warm", 2), CONFIG), timeout=600)
            results["one_worker_half_cores"] = bench.throughput(client, "half")
            bench.start_worker(f"bench-w2-{bench.run}", threads)
            client.wait(client.submit(case(f"{bench.run}-warm", 1), CONFIG), timeout=600)
            results["two_workers"] = bench.throughput(client, "two")
            results["cache"] = bench.cache(client)
            results["redelivery"] = bench.redelivery(client)
    finally:
        server.stop(grace=0.5)
        bench.cleanup()
    results["machine"]["load_avg_end"] = os.getloadavg()[0]
    one, two = results["one_worker"], results["two_workers"]
    results["two_over_one"] = round(two["audits_per_minute"] / one["audits_per_minute"], 2)
    results["note"] = (f"{os.cpu_count()} CPU cores shared by every worker (torch uses all of "
                       "them in each): two workers cannot double throughput here; on separate "
                       "machines or cores they would scale with the worker count")
    half = results["one_worker_half_cores"]
    results["two_over_one_half_cores"] = round(two["audits_per_minute"]
                                               / half["audits_per_minute"], 2)
    print(f"1 worker : {one['audits_per_minute']:7.1f} audits/min {one['by_worker']} "
          "(all cores)")
    print(f"1 worker : {half['audits_per_minute']:7.1f} audits/min {half['by_worker']} "
          f"(torch threads {threads})")
    print(f"2 workers: {two['audits_per_minute']:7.1f} audits/min {two['by_worker']} "
          f"(x{results['two_over_one']} over all cores, "
          f"x{results['two_over_one_half_cores']} over the same threads each)")
    cache = results["cache"]
    print(f"cache    : {cache['first_s']}s -> {cache['second_s']}s end to end "
          f"(x{cache['speedup_end_to_end']}), audit x{cache['speedup_audit']}, "
          f"misses on repeat {cache['second_cache_misses']}")
    red = results["redelivery"]
    print(f"redeliver: kill -> restarted {red['kill_to_restart_s']}s, -> done "
          f"{red['kill_to_done_s']}s (visibility timeout {red['visibility_timeout_s']}s, "
          f"attempts {red['attempts']}, outcome writes {red['finish_writes']})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
