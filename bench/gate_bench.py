"""Wall time of `relyscope gate` on the bundled 54-query evaluation set, cold and warm cache.

Runs the real CLI twice in subprocesses against a fresh score-cache file: the first run scores
everything, the second finds every score in the cache (answer generation and the attention
pass are not cached). Prints and writes bench/results/gate.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "relyscope" / "data" / "demo_eval.jsonl"
EXAMPLES = ROOT / "examples" / "gate"


def run_gate(cache: Path, out: Path) -> tuple[float, int, str]:
    command = [sys.executable, "-m", "relyscope", "gate", "--eval", str(EVAL),
               "--baseline", str(EXAMPLES / "baseline.toml"),
               "--candidate", str(EXAMPLES / "degraded.toml"),
               "--thresholds", str(EXAMPLES / "thresholds.toml"),
               "--cache", str(cache), "--json", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TQDM_DISABLE": "1"}, check=False)
    seconds = time.perf_counter() - started
    passes = next((line for line in done.stderr.splitlines() if line.startswith("gate:")), "")
    return seconds, done.returncode, passes


def main() -> None:
    queries = sum(1 for line in EVAL.read_text().splitlines() if line.strip())
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "scores.sqlite"
        cold = run_gate(cache, Path(tmp) / "cold.json")
        warm = run_gate(cache, Path(tmp) / "warm.json")
        verdict = json.loads((Path(tmp) / "warm.json").read_text())["passed"]
    result = {
        "benchmark": "gate", "queries": queries, "configurations": 2,
        "cold": {"seconds": round(cold[0], 1), "exit_code": cold[1], "cost": cold[2]},
        "warm": {"seconds": round(warm[0], 1), "exit_code": warm[1], "cost": warm[2]},
        "speedup": round(cold[0] / warm[0], 2), "degraded_candidate_passed": verdict,
        "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()},
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "gate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
