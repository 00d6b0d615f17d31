"""What the gRPC service costs over calling relyscope as a library, and what it sustains.

    python bench/service_bench.py [--requests 8] [--per-level 8] [--levels 1,4,16]

Starts `python -m relyscope serve` as its own process (the packaged model, a free
localhost port) and, in this process, loads the same model for library calls. Every request
audits a distinct 5-source case (the query differs, so no score-cache hits anywhere) with
attention + leave-one-out.

- latency: p50/p95 of `Audit` over --requests sequential calls vs run_audit() in-process on
  the same cases; the overhead ratio is service p50 / library p50.
- throughput: audits per second with 1, 4 and 16 concurrent clients (each its own channel),
  max(--per-level, clients) requests per level. The model runs on one thread, so more
  clients queue rather than add throughput; the numbers show what queueing costs.
- CPU seconds beside every wall time (server process + this process for the service, this
  process for the library), read from /proc: on a shared machine other jobs stretch wall
  times by whatever they take, while CPU time stays close to the work itself.

Prints a table and writes bench/results/service.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relyscope.case import Case  # noqa: E402
from relyscope.config import AuditConfig  # noqa: E402

CONFIG = AuditConfig(methods=("attention", "loo"))
SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt."),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel."),
    ("d2", "Copper prices rose sharply in the northern markets last year."),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns."),
    ("d4", "Tidewater lighthouses use rotating lenses to guide ships at night."),
]
QUERIES = ["Who founded the Zelk guild?", "Who set up the Zelk guild?",
           "Which person founded the Zelk guild?", "Who started the Zelk guild?",
           "Who was the founder of the Zelk guild?", "Who created the Zelk guild?",
           "Name the founder of the Zelk guild.", "Who established the Zelk guild?"]


def case(number: int) -> Case:
    """A distinct 5-source case per number (a different query: no shared cache entries)."""
    query = QUERIES[number % len(QUERIES)]
    if number >= len(QUERIES):
        query = f"{query} (question {number})"
    return Case.from_dict({
        "id": f"bench-{number}",
        "system": "Answer the question in one sentence using the context.",
        "query": query, "answer": "The Zelk guild was founded by Anna Roth.",
        "sources": [{"id": i, "text": t} for i, t in SOURCES]})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(seconds: list[float]) -> dict[str, float]:
    return {"n": len(seconds), "p50_s": percentile(seconds, 0.5),
            "p95_s": percentile(seconds, 0.95), "mean_s": statistics.fmean(seconds),
            "min_s": min(seconds), "max_s": max(seconds)}


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Meter:
    """Wall and CPU seconds of one call: this process plus, optionally, the server's."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> Meter:
        self.wall = time.perf_counter()
        self.cpu = time.process_time() + (process_cpu(self.server_pid)
                                          if self.server_pid else 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() + (process_cpu(self.server_pid)
                                          if self.server_pid else 0.0) - self.cpu


def start_server(queue_size: int) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("RELYSCOPE_AUTH_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "relyscope", "serve", "--host",
                             "127.0.0.1", "--port", "0", "--queue-size", str(queue_size)],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr],
                     daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        found = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        if found:
            return proc, int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8, help="sequential latency samples")
    parser.add_argument("--per-level", type=int, default=8,
                        help="requests per throughput level (at least one per client)")
    parser.add_argument("--levels", default="1,4,16", help="concurrent clients per level")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "service.json"))
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    import torch

    from relyscope.audits import run_audit
    from relyscope.client import Client
    from relyscope.models import CausalLM

    load_before = os.getloadavg()
    proc, port = start_server(queue_size=max(levels) * 2)
    target = f"127.0.0.1:{port}"
    try:
        lm = CausalLM.load()
        with Client(target, timeout=900) as client:
            while client.health() != "SERVING":
                time.sleep(0.2)
            numbers = iter(range(10_000))
            warm = next(numbers)  # one warm-up audit on each side, not measured
            client.audit(case(warm), CONFIG)
            run_audit(case(warm), lm, CONFIG)

            idle_before = process_cpu(proc.pid)
            time.sleep(5)
            idle_cpu_share = (process_cpu(proc.pid) - idle_before) / 5

            cases = [case(next(numbers)) for _ in range(args.requests)]
            service, library, service_cpu, library_cpu = [], [], [], []
            for item in cases:  # interleaved, so load drifts hit both sides alike
                with Meter(proc.pid) as remote_meter:
                    remote = client.audit(item, CONFIG)
                with Meter() as local_meter:
                    local = run_audit(item, lm, CONFIG)
                assert remote.ranking("loo") == local.ranking("loo"), item.id
                service.append(remote_meter.wall)
                library.append(local_meter.wall)
                service_cpu.append(remote_meter.cpu)
                library_cpu.append(local_meter.cpu)
            print(f"latency  service p50 {percentile(service, .5):.3f}s "
                  f"p95 {percentile(service, .95):.3f}s | library p50 "
                  f"{percentile(library, .5):.3f}s p95 {percentile(library, .95):.3f}s | "
                  f"CPU s p50 service {percentile(service_cpu, .5):.3f} library "
                  f"{percentile(library_cpu, .5):.3f}", flush=True)

        throughput = []
        for clients in levels:
            total = max(args.per_level, clients)
            total += (-total) % clients
            batch = [case(next(numbers)) for _ in range(total)]
            per_client = [batch[i::clients] for i in range(clients)]

            def run(share: list[Case]) -> list[float]:
                times = []
                with Client(target, timeout=3600) as own:
                    for item in share:
                        began = time.perf_counter()
                        own.audit(item, CONFIG)
                        times.append(time.perf_counter() - began)
                return times

            with Meter(proc.pid) as level, ThreadPoolExecutor(clients) as pool:
                latencies = [t for ts in pool.map(run, per_client) for t in ts]
            wall = level.wall
            throughput.append({"clients": clients, "requests": total, "wall_s": wall,
                               "audits_per_s": total / wall,
                               "cpu_s_per_audit": level.cpu / total,
                               "audits_per_cpu_s": total / level.cpu,
                               "latency": summary(latencies)})
            print(f"throughput {clients:>2} clients: {total / wall:.3f} audits/s "
                  f"({total} in {wall:.1f}s, p50 latency {percentile(latencies, .5):.2f}s; "
                  f"{level.cpu / total:.2f} CPU s per audit)", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    result: dict[str, Any] = {
        "benchmark": "service", "config": CONFIG.model_dump(mode="json"),
        "case": {"sources": len(SOURCES), "tool_calls": 0,
                 "prompt_tokens": lm.renderer(cases[0]).render().input_ids.__len__()},
        "model": {"id": lm.info.id, "revision": lm.info.revision, "device": lm.info.device},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "server_idle_cpu_share": idle_cpu_share,
        "latency": {"service": summary(service), "library": summary(library),
                    "overhead_ratio_p50": percentile(service, .5) / percentile(library, .5),
                    "overhead_ratio_paired_median": statistics.median(
                        s / lib for s, lib in zip(service, library, strict=True)),
                    "overhead_mean_ms": 1000 * (statistics.fmean(service)
                                                - statistics.fmean(library)),
                    "service_cpu": summary(service_cpu), "library_cpu": summary(library_cpu),
                    "cpu_overhead_ratio_p50": percentile(service_cpu, .5)
                    / percentile(library_cpu, .5),
                    "cpu_overhead_ratio_paired_median": statistics.median(
                        s / lib for s, lib in zip(service_cpu, library_cpu, strict=True))},
        "throughput": throughput,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    latency = result["latency"]
    print(f"overhead ratio, wall p50 {latency['overhead_ratio_p50']:.3f} (paired median "
          f"{latency['overhead_ratio_paired_median']:.3f}); CPU p50 "
          f"{latency['cpu_overhead_ratio_p50']:.3f} (paired median "
          f"{latency['cpu_overhead_ratio_paired_median']:.3f}); server idle CPU "
          f"{idle_cpu_share:.1%}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
