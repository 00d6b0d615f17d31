"""audit-logs benchmark: records per minute, and what ingestion costs per 10,000 records.

- Audits: 20 logged OpenAI chat records (five retrieved passages each, every other one with a
  tool call) audited with attention + leave-one-out on the packaged SmolLM2-135M-Instruct, one
  worker, through `audit_logs` (reading, auditing, durable result lines). Model loading is
  timed apart. Nothing is extrapolated: the rate is what these 20 records took.
- Ingestion: `read_logs` over a generated 10,000-record OpenAI JSONL file (parsing and
  normalising into Cases), and appending 10,000 result lines (one write + fsync each) made from
  the audited reports: the per-record bookkeeping a batch run adds to the audits.

The machine's load average is recorded with the numbers: on a shared machine it moves them.
Run: ``python bench/logs_bench.py [--threads N]``; writes bench/results/logs.json (the audit
numbers under a key per torch thread count, so runs with different counts sit side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from relyscope.batch.audit_logs import audit_logs
from relyscope.batch.results import ResultsFile, read_results
from relyscope.config import AuditConfig
from relyscope.ingest import read_logs
from relyscope.models import CausalLM

RESULTS = Path(__file__).parent / "results" / "logs.json"
AUDITED = 20
INGESTED = 10_000
SYSTEM = "Answer the question in one sentence using the context and tool results."
SYLLABLES = ["ka", "lo", "mir", "ven", "tas", "or", "bel", "quin", "dra", "sul", "fen", "zan"]
THINGS = ["bridge", "guild", "mill", "harbour", "school", "festival", "mine", "tower"]
PEOPLE = ["Anna Roth", "Tomas Vell", "Ilse Marn", "Oren Daske", "Nora Pell", "Emil Strand"]


def record(i: int, rng: random.Random) -> dict[str, Any]:
    """One logged RAG answer about an invented place; the second passage holds the fact."""
    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(2)).title()

    place, thing, person = word(), rng.choice(THINGS), rng.choice(PEOPLE)
    fact = f"The {thing} of {place} was founded by {person}."
    docs = [f"The {rng.choice(THINGS)} of {word()} is known for its {word()} markets.",
            fact,
            f"Rain in {word()} falls mostly in the spring months.",
            f"The {word()} river is crossed by three stone bridges.",
            f"Visitors to {word()} often arrive by the morning ferry."]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Who founded the {thing} of {place}?"}]
    answer = f"The {thing} of {place} was founded by {person}."
    if i % 2:
        call = f"call_{i}"
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": call, "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": place})}}]},
            {"role": "tool", "tool_call_id": call, "content": f"{rng.randint(5, 25)} C, dry"}]
    messages.append({"role": "assistant", "content": answer})
    return {"id": f"chatcmpl-{i:05d}", "model": "gpt-4o-mini", "messages": messages,
            "documents": [{"id": f"doc-{i}-{j}", "text": t, "score": round(0.9 - 0.1 * j, 2)}
                          for j, t in enumerate(docs)]}


def write_log(path: Path, n: int) -> Path:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps(record(i, rng)) + "\n")
    return path


def bench_audits(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    started = time.perf_counter()
    lm = CausalLM.load()
    load_s = time.perf_counter() - started
    log = write_log(folder / "audit.jsonl", AUDITED)
    out = folder / "results.jsonl"
    load_before = os.getloadavg()[0]
    summary = audit_logs(log, out, config=AuditConfig(methods=("attention", "loo")), lm=lm,
                         progress=False)
    lines = list(read_results(out))
    assert summary.audited == AUDITED, summary.describe()
    passes = [line["report"]["cost"]["forward_passes"] for line in lines]
    return {"records": AUDITED, "methods": ["attention", "loo"], "workers": 1,
            "model": lm.info.id, "device": lm.info.device, "torch_threads":
                torch.get_num_threads(),
            "model_load_s": round(load_s, 2), "seconds": round(summary.seconds, 2),
            "records_per_minute": round(60 * AUDITED / summary.seconds, 1),
            "mean_forward_passes_per_record": round(sum(passes) / len(passes), 1),
            "load_average_1min_before": round(load_before, 2),
            "load_average_1min_after": round(os.getloadavg()[0], 2)}, lines


def bench_ingestion(folder: Path, reports: list[dict[str, Any]]) -> dict[str, Any]:
    log = write_log(folder / "ingest.jsonl", INGESTED)
    started = time.perf_counter()
    records = list(read_logs(log))
    read_s = time.perf_counter() - started
    assert len(records) == INGESTED and all(r.ok for r in records)

    out = folder / "write.jsonl"
    started = time.perf_counter()
    with ResultsFile.open(out) as results:
        for i in range(INGESTED):
            results.append({**reports[i % len(reports)], "record_id": f"w{i}"})
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    with ResultsFile.open(out) as results:
        assert len(results.done) == INGESTED
    resume_s = time.perf_counter() - started
    return {"records": INGESTED, "log_mb": round(log.stat().st_size / 1e6, 1),
            "read_logs_s": round(read_s, 2),
            "read_logs_ms_per_record": round(1000 * read_s / INGESTED, 3),
            "results_mb": round(out.stat().st_size / 1e6, 1),
            "append_results_s": round(write_s, 2), "resume_scan_s": round(resume_s, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        audits, lines = bench_audits(Path(tmp))
        print(f"audits: {audits['records_per_minute']} records/min "
              f"({audits['records']} records, attention+loo, {audits['seconds']} s, "
              f"{audits['torch_threads']} torch threads, "
              f"load avg {audits['load_average_1min_before']})")
        ingestion = bench_ingestion(Path(tmp), lines)
        print(f"ingestion per {INGESTED:,} records: read_logs {ingestion['read_logs_s']} s, "
              f"appending results (fsync each) {ingestion['append_results_s']} s, "
              f"resume scan {ingestion['resume_scan_s']} s")
    result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result.setdefault("audits", {})[f"threads_{audits['torch_threads']}"] = audits
    result["ingestion_per_10k"] = ingestion
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "torch": torch.__version__, "platform": platform.platform()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
