"""Reliability benchmark: the deadline contract, abandoned work, concurrency, a full queue,
shutdown and hostile input, against `relyscope serve` processes on 127.0.0.1 only.

    python -m bench.reliability [--quick]

Writes bench/results/reliability.{json,md} with the commit, the machine and its load. Bounded:
every call has a deadline or a timeout, every server is stopped. What it records:

- deadline sweep: an all-methods audit (every registered method) of a 4-passage, 1-tool case
  at deadlines from 2 s to 60 s: status, partial, what was cut, lateness beyond the deadline;
- abandoned work: an attention-only audit on an idle server, then right after an all-methods
  audit whose caller went away (a closed stream): the ratio of the two (target <= 1.5x);
- 16 clients x 3 audits at once: p50/p95 latency and errors;
- a full queue: what the calls over the bound get, and how fast;
- SIGTERM during an audit with --grace 5: time to exit (target <= 7 s), health during the
  drain, the shutdown log line;
- hostile input: input, status, time to refuse.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import load, machine_info  # noqa: E402
from relyscope.audits.registry import method_names  # noqa: E402
from relyscope.case import Case  # noqa: E402
from relyscope.client import Client, ServiceCallError  # noqa: E402
from relyscope.config import AuditConfig  # noqa: E402
from relyscope.protocol.convert import case_to_proto, config_to_proto  # noqa: E402
from relyscope.v1 import audit_pb2 as pb  # noqa: E402
from relyscope.v1 import audit_pb2_grpc  # noqa: E402

RESULTS = REPO / "bench" / "results"
ALL = AuditConfig(methods=method_names())
ATTENTION = AuditConfig(methods=("attention",))
LOO = AuditConfig(methods=("loo",))
SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt."),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel."),
    ("d2", "Copper prices rose sharply in the northern markets last year."),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns."),
]


def case(case_id: str, query: str = "Who founded the Zelk guild?") -> Case:
    return Case.from_dict({
        "id": case_id, "system": "Answer the question in one sentence using the context.",
        "query": query, "sources": [{"id": i, "text": t} for i, t in SOURCES],
        "tool_calls": [{"id": "call_1", "name": "weather", "arguments": '{"city": "Mirel"}',
                        "output": "18 C and dry in Mirel"}],
        "answer": "The Zelk guild was founded by Anna Roth."})


class Server:
    """`relyscope serve` in its own process on a free 127.0.0.1 port; stderr is kept."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("RELYSCOPE_AUTH_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relyscope", "serve", "--host", "127.0.0.1", "--port", "0",
             *args], stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.lines: list[str] = []
        found: queue.Queue[int] = queue.Queue()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
                if match:
                    found.put(int(match.group(1)))

        threading.Thread(target=read, daemon=True).start()
        self.port = found.get(timeout=300)
        self.target = f"127.0.0.1:{self.port}"
        self._wait_serving()

    def _wait_serving(self) -> None:
        give_up = time.monotonic() + 300
        while time.monotonic() < give_up:
            if health(self.target) == "SERVING":
                return
            time.sleep(0.2)
        raise TimeoutError("the server never became SERVING")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def health(target: str, timeout: float = 2.0) -> str:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as err:
            return err.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def timed_audit(client: Client, audit_case: Case, config: AuditConfig,
                timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        report = client.audit(audit_case, config, timeout=timeout)
        status, partial = "OK", report.partial
        cut = sorted(report.settings.get("cut", {}))
    except ServiceCallError as err:
        status, partial, cut = err.code.name, None, []
    return {"status": status, "partial": partial, "cut": cut,
            "seconds": round(time.monotonic() - started, 3)}


# -- the sections ---------------------------------------------------------------------------

def deadline_sweep(server: Server, deadlines: list[float]) -> list[dict[str, Any]]:
    rows = []
    with Client(server.target, timeout=300) as client:
        for n, deadline in enumerate(deadlines):
            row = timed_audit(client, case(f"sweep{n}", f"Who founded the Zelk guild ({n})?"),
                              ALL, deadline)
            row.update(deadline_s=deadline, lateness_s=round(max(0.0, row["seconds"] - deadline),
                                                             3), load=load()[0])
            rows.append(row)
            print("sweep", row, flush=True)
    return rows


def abandoned(server: Server, rounds: int = 2) -> dict[str, Any]:
    """Attention-only audits on an idle server, then `rounds` times: an all-methods audit
    abandoned (its stream closed) a second after its first method started, and at once the
    next attention-only audit. The server's log says how long each abandoned audit went on
    after the cancel (the model call in flight)."""
    with Client(server.target, timeout=300) as client:
        timed_audit(client, case("warm", "Who set up the Zelk guild?"), ATTENTION, 300)
        idle = [timed_audit(client, case(f"idle{n}", f"Who set up the Zelk guild ({n})?"),
                            ATTENTION, 300)["seconds"] for n in range(3)]
        after = []
        for n in range(rounds):
            with grpc.insecure_channel(server.target) as channel:
                stub = audit_pb2_grpc.AuditServiceStub(channel)
                request = pb.AuditRequest(
                    id=f"abandoned{n}", config=config_to_proto(ALL),
                    case=case_to_proto(case(f"abandoned{n}", f"Who founded the guild ({n})?")))
                call = stub.StreamAudit(request, timeout=600)
                next(call)  # queued
                next(call)  # the first method started: the audit is running
                time.sleep(1.0)
                call.cancel()
            after.append(timed_audit(client, case(f"after{n}", f"Who set up the guild ({n})?"),
                                     ATTENTION, 300)["seconds"])
    stopped = [float(m.group(1)) for line in server.lines
               if (m := re.search(r"cancelled while running: stopped ([\d.]+)s", line))]
    idle_s, after_s = statistics.median(idle), statistics.median(after)
    return {"idle_s": idle, "idle_median_s": idle_s, "after_abandoned_each_s": after,
            "after_abandoned_s": after_s, "ratio": round(after_s / idle_s, 3),
            "ratio_each": [round(a / idle_s, 3) for a in after],
            "stopped_after_cancel_s": stopped, "target_ratio": 1.5,
            "meets_target": after_s / idle_s <= 1.5, "load": load()[0]}


def concurrency(server: Server, clients: int, audits: int) -> dict[str, Any]:
    def one_client(n: int) -> list[dict[str, Any]]:
        with Client(server.target, timeout=600) as client:
            return [timed_audit(client, case(f"c{n}", f"Who founded the Zelk guild? ({n})"),
                                LOO, 600) for _ in range(audits)]

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        rows = [r for rows in pool.map(one_client, range(clients)) for r in rows]
    seconds = sorted(r["seconds"] for r in rows)
    errors = [r["status"] for r in rows if r["status"] != "OK"]
    return {"clients": clients, "audits_each": audits, "calls": len(rows),
            "ok": len(rows) - len(errors), "errors": errors,
            "p50_s": seconds[len(seconds) // 2],
            "p95_s": seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))],
            "wall_s": round(time.monotonic() - started, 2), "load": load()[0]}


def queue_full(server: Server, queue_size: int) -> dict[str, Any]:
    outcomes: list[dict[str, Any]] = []
    jobs: list[str] = []
    with Client(server.target, timeout=60) as client:
        for n in range(queue_size + 4):
            started = time.monotonic()
            try:
                jobs.append(client.submit(case(f"q{n}", f"Who founded the Zelk guild [{n}]?"),
                                          ALL))
                outcomes.append({"status": "OK", "seconds": time.monotonic() - started})
            except ServiceCallError as err:
                outcomes.append({"status": err.code.name, "field": err.field,
                                 "seconds": time.monotonic() - started})
        for job_id in jobs:
            client.cancel(job_id)
    refused = [o for o in outcomes if o["status"] != "OK"]
    return {"queue_size": queue_size, "submitted": len(outcomes), "accepted": len(jobs),
            "refused": len(refused), "refused_status": sorted({o["status"] for o in refused}),
            "refused_field": sorted({o.get("field", "") for o in refused}),
            "max_refuse_s": round(max((o["seconds"] for o in refused), default=0.0), 4)}


def sigterm() -> dict[str, Any]:
    server = Server("--grace", "5")
    try:
        client = Client(server.target, timeout=300)
        holder: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: holder.update(
            timed_audit(client, case("term"), ALL, 300)), daemon=True)
        worker.start()
        time.sleep(3.0)
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        during = health(server.target, timeout=1.0)
        server.proc.wait(timeout=60)
        exit_s = time.monotonic() - sent
        worker.join(timeout=10)
        client.close()
    finally:
        server.stop()
    logged = [line for line in server.lines if "shutdown" in line]
    return {"grace_s": 5, "exit_s": round(exit_s, 2), "target_s": 7.0,
            "meets_target": exit_s <= 7.0, "health_during_drain": during,
            "in_flight_call": holder.get("status"), "log_lines": logged[:4],
            "exit_code": server.proc.returncode}


def hostile(server: Server) -> list[dict[str, Any]]:
    def raw_call(payload: bytes) -> tuple[str, float]:
        with grpc.insecure_channel(server.target) as channel:
            call = channel.unary_unary("/relyscope.v1.AuditService/Audit",
                                       request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
            started = time.monotonic()
            try:
                call(payload, timeout=60)
                return "OK", time.monotonic() - started
            except grpc.RpcError as err:
                return err.code().name, time.monotonic() - started

    def request(audit_case: Case, methods: tuple[str, ...] = ("loo",)) -> bytes:
        message = pb.AuditRequest(id="h", case=case_to_proto(audit_case))
        message.config.methods[:] = list(methods)
        return message.SerializeToString()

    base = case("hostile", "QQQQ founded the Zelk guild?")
    big = case("big").model_copy(update={"sources": (
        case("big").sources[0].model_copy(update={"text": "Zelk ledgers. " * 15000}),)})
    inputs = {
        "non-UTF-8 bytes in case.query": request(base).replace(b"QQQQ", b"\xff\xfe\xfdQ"),
        "200,000-character source": request(big),
        "20 MB request": request(case("huge").model_copy(update={"sources": (
            case("huge").sources[0].model_copy(update={"text": "x" * 20_000_000}),)})),
        "garbage bytes": b"\x0a\xff\xff\xff\xff\x0f" + os.urandom(64),
        "unknown method (config.methods[1])": request(case("m"), ("loo", "telepathy")),
    }
    rows = []
    for label, payload in inputs.items():
        status, seconds = raw_call(payload)
        rows.append({"input": label, "bytes": len(payload), "status": status,
                     "seconds": round(seconds, 3)})
        print("hostile", rows[-1], flush=True)
    rows.append({"input": "health after all of them", "status": health(server.target)})
    return rows


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=REPO).stdout.strip()


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Reliability benchmark\n", f"commit `{result['commit']}`, "
             f"{result['machine']['cpu']} ({result['machine']['cores']} cores), load "
             f"{result['machine']['loadavg_start']} at start, {result['load_end']} at end.\n"]
    sweep = result["deadline_sweep"]
    lines += ["## Deadline sweep (all methods, 4 passages + 1 tool)\n",
              "| deadline s | status | partial | seconds | lateness s | cut | load |",
              "|---:|---|---|---:|---:|---|---:|"]
    lines += [f"| {r['deadline_s']} | {r['status']} | {r['partial']} | {r['seconds']} | "
              f"{r['lateness_s']} | {', '.join(r['cut'])} | {r['load']} |" for r in sweep]
    lines += ["", result["deadline_verdict"], ""]
    if "abandoned" in result:
        a = result["abandoned"]
        lines += ["## The next call after an abandoned all-methods audit\n",
                  f"attention-only on an idle server {a['idle_median_s']:.2f} s (median of "
                  f"{a['idle_s']}); right after an abandoned all-methods audit "
                  f"{a['after_abandoned_s']:.2f} s (median of "
                  f"{a.get('after_abandoned_each_s', [a['after_abandoned_s']])}): ratio "
                  f"**{a['ratio']}** (each {a.get('ratio_each')}; target <= 1.5, "
                  f"{'met' if a['meets_target'] else 'NOT met'}), load {a['load']}. The "
                  f"server's log: each abandoned audit stopped "
                  f"{a.get('stopped_after_cancel_s')} s after its cancel.\n"]
    if "concurrency" in result:
        c = result["concurrency"]
        lines += ["## Concurrent clients (leave-one-out audits)\n",
                  f"{c['clients']} clients x {c['audits_each']}: {c['ok']}/{c['calls']} OK, "
                  f"errors {c['errors'] or 'none'}, p50 {c['p50_s']} s, p95 {c['p95_s']} s, "
                  f"wall {c['wall_s']} s, load {c['load']}.\n"]
    if "queue_full" in result:
        q = result["queue_full"]
        lines += ["## Queue full\n",
                  f"queue size {q['queue_size']}: {q['submitted']} submitted at once, "
                  f"{q['accepted']} accepted, {q['refused']} refused with "
                  f"{q['refused_status']} (field {q['refused_field']}) in at most "
                  f"{q['max_refuse_s']} s.\n"]
    if "sigterm" in result:
        s = result["sigterm"]
        lines += ["## SIGTERM during an audit (--grace 5)\n",
                  f"exit after **{s['exit_s']} s** (target <= 7 s, "
                  f"{'met' if s['meets_target'] else 'NOT met'}), exit code {s['exit_code']}, "
                  f"health during the drain {s['health_during_drain']}, the in-flight call got "
                  f"{s['in_flight_call']}; log: {s['log_lines']}\n"]
    if "hostile" in result:
        lines += ["## Hostile input\n", "| input | bytes | status | seconds to refuse |",
                  "|---|---:|---|---:|"]
        lines += [f"| {r['input']} | {r.get('bytes', '')} | {r['status']} | "
                  f"{r.get('seconds', '')} |" for r in result["hostile"]]
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer deadlines and clients (a smoke run)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["abandoned", "concurrency", "queue_full", "sigterm",
                                 "hostile"])
    args = parser.parse_args()
    deadlines = [2.0, 5.0, 10.0] if args.quick else [2.0, 5.0, 8.0, 14.0, 20.0, 30.0, 60.0]
    result: dict[str, Any] = {"commit": git_commit(), "machine": machine_info(),
                              "methods": list(ALL.methods)}
    queue_size = 16
    server = Server("--queue-size", str(queue_size))
    try:
        result["deadline_sweep"] = deadline_sweep(server, deadlines)
        bound = [r for r in result["deadline_sweep"] if r["deadline_s"] >= 5]
        held = all(r["status"] == "OK" and r["seconds"] <= r["deadline_s"] for r in bound)
        exceeded = [r for r in result["deadline_sweep"] if r["status"] == "DEADLINE_EXCEEDED"]
        result["deadline_contract_held"] = held and not exceeded
        result["deadline_verdict"] = (
            f"Every call with a deadline of 5 s or more returned OK within its deadline: "
            f"{'yes' if held else 'NO'}; calls ending in DEADLINE_EXCEEDED: {len(exceeded)}.")
        if "abandoned" not in args.skip:
            result["abandoned"] = abandoned(server)
        if "concurrency" not in args.skip:
            result["concurrency"] = concurrency(server, 4 if args.quick else 16, 3)
        if "queue_full" not in args.skip:
            result["queue_full"] = queue_full(server, queue_size)
        if "hostile" not in args.skip:
            result["hostile"] = hostile(server)
    finally:
        server.stop()
    if "sigterm" not in args.skip:
        result["sigterm"] = sigterm()
    result["load_end"] = load()
    write(result)
    print(json.dumps({k: result[k] for k in ("deadline_verdict", "load_end")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
