"""How long `relyscope report --help` (and other commands needing no model) take to start.

Runs each command `--repeats` times in fresh processes and keeps the median and the best; with
`--baseline DIR` (a `git archive <commit> relyscope | tar -x -C DIR` of an older tree) also the
same commands on that tree, for a before/after. Writes bench/results/cli_startup.json with the
commit and the load average (a shared machine's numbers mean little without it).

    python -m bench.cli_startup [--baseline /tmp/base] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["report", "--help"], ["gate", "--help"], ["audit", "--help"])


def timed(args: list[str], pythonpath: str | None) -> float:
    env = {**os.environ}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started = time.perf_counter()
    # cwd: not the checkout, whose relyscope/ `-m` would put ahead of PYTHONPATH's
    subprocess.run([sys.executable, "-m", "relyscope", *args], env=env, check=True,
                   capture_output=True, timeout=600, cwd="/")
    return time.perf_counter() - started


def measure(pythonpath: str | None, repeats: int) -> dict[str, dict[str, float]]:
    out = {}
    for args in COMMANDS:
        runs = [timed(args, pythonpath) for _ in range(repeats)]
        out["relyscope " + " ".join(args)] = {"median_s": round(statistics.median(runs), 2),
                                              "best_s": round(min(runs), 2)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a tree holding an older relyscope/ package")
    parser.add_argument("--baseline-commit", default="", help="its commit, for the record")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli_startup.json"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    result: dict[str, object] = {"commit": commit, "loadavg_start": os.getloadavg(),
                                 "cores": os.cpu_count(), "repeats": args.repeats}
    if args.baseline:
        result["before"] = {"commit": args.baseline_commit,
                            "times": measure(args.baseline, args.repeats)}
    result["after"] = {"commit": commit, "times": measure(None, args.repeats)}
    result["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
