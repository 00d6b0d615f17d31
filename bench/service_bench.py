"""What the gRPC service costs over calling relyscope as a library, and what it sustains.

    python bench/service_bench.py [--requests 8] [--per-level 8] [--levels 1,4,16]

Starts `python -m relyscope.service serve` as its own process (the packaged model, a free
localhost port) and, in this process, loads the same model for library calls. Every request
audits a distinct 5-source case (the query differs, so no score-cache hits anywhere) with
attention + leave-one-out.

- latency: p50/p95 of `Audit` over --requests sequential calls vs run_audit() in-process on
  the same cases; the overhead ratio is service p50 / library p50.
- throughput: audits per second with 1, 4 and 16 concurrent clients (each its own channel),
  max(--per-level, clients) requests per level. The model runs on one thread, so more
  clients queue rather than add throughput; the numbers show what queueing costs.

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

from relyscope.case import AuditConfig, Case  # noqa: E402

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


def start_server(queue_size: int) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("RELYSCOPE_AUTH_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "relyscope.service", "serve", "--host",
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

            cases = [case(next(numbers)) for _ in range(args.requests)]
            service, library = [], []
            for item in cases:  # interleaved, so load drifts hit both sides alike
                started = time.perf_counter()
                remote = client.audit(item, CONFIG)
                service.append(time.perf_counter() - started)
                started = time.perf_counter()
                local = run_audit(item, lm, CONFIG)
                library.append(time.perf_counter() - started)
                assert remote.ranking("loo") == local.ranking("loo"), item.id
            print(f"latency  service p50 {percentile(service, .5):.3f}s "
                  f"p95 {percentile(service, .95):.3f}s | library p50 "
                  f"{percentile(library, .5):.3f}s p95 {percentile(library, .95):.3f}s",
                  flush=True)

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

            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                latencies = [t for ts in pool.map(run, per_client) for t in ts]
            wall = time.perf_counter() - started
            throughput.append({"clients": clients, "requests": total, "wall_s": wall,
                               "audits_per_s": total / wall,
                               "latency": summary(latencies)})
            print(f"throughput {clients:>2} clients: {total / wall:.3f} audits/s "
                  f"({total} in {wall:.1f}s, p50 latency "
                  f"{percentile(latencies, .5):.2f}s)", flush=True)
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
        "latency": {"service": summary(service), "library": summary(library),
                    "overhead_ratio_p50": percentile(service, .5) / percentile(library, .5),
                    "overhead_ratio_mean": statistics.fmean(service)
                    / statistics.fmean(library),
                    "overhead_mean_ms": 1000 * (statistics.fmean(service)
                                                - statistics.fmean(library))},
        "throughput": throughput,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"overhead ratio (p50 service / p50 library): "
          f"{result['latency']['overhead_ratio_p50']:.3f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
