"""`python -m bench [quality|perf|all] [--quick]`: run the benchmarks, write bench/results/.

OMP_WAIT_POLICY=PASSIVE is set before torch loads (unless already set): on a shared 2-core
machine, OpenMP threads that spin while waiting made 2-thread passes 3-4x slower than 1-thread
ones (measured; see perf.json "threads").
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")  # ContextCite's per-batch progress bars

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=["quality", "perf", "all"])
    parser.add_argument("--quick", action="store_true", help="a small run (under 10 minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--device", default="cpu",
                        help="torch device for the model (cuda on a GPU machine)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="the model's dtype for the whole run")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="quality: stop drawing cases after this long (the results then "
                             "say they are a subset)")
    parser.add_argument("--all-methods", action="store_true",
                        help="quality: every registered method on the first cases of each "
                             "kind (writes quality-all-methods.*; with --quick: on the quick "
                             "set)")
    parser.add_argument("--kinds", default=None,
                        help="quality: only these kinds, comma-separated (a shard run)")
    parser.add_argument("--start-index", type=int, default=0,
                        help="quality: the first case index per kind (a shard run; pool "
                             "shards with python -m bench.quality_merge)")
    parser.add_argument("--stem", default=None,
                        help="quality: results file stem (default quality or "
                             "quality-all-methods)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for scoring (default: torch's own setting)")
    args = parser.parse_args(argv)

    import torch

    from relyscope.models import CausalLM, ScoringOptions

    if args.threads:
        torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if args.which in ("quality", "all"):
        from bench import quality

        lm = CausalLM.load(device=args.device, dtype=args.dtype, options=ScoringOptions())
        if args.quick:
            settings = dataclasses.replace(quality.QUICK, all_methods=args.all_methods)
        else:
            settings = quality.ALL_METHODS if args.all_methods else quality.FULL
            mode = "every method" if args.all_methods else mode
        if args.max_minutes:
            settings = dataclasses.replace(settings, max_seconds=args.max_minutes * 60)
        if args.kinds:
            wanted = args.kinds.split(",")
            unknown = [k for k in wanted if k not in settings.targets]
            if unknown:
                parser.error(f"--kinds: unknown {unknown}; choose from {list(settings.targets)}")
            settings = dataclasses.replace(
                settings, targets={k: n for k, n in settings.targets.items() if k in wanted})
        settings = dataclasses.replace(settings, start_index=args.start_index,
                                       stem=args.stem or settings.stem)
        result = quality.run(lm, settings, args.out, mode=mode, log=log)
        log(f"quality done in {result['seconds']:.0f}s -> {args.out / settings.stem}.md")
    if args.which in ("perf", "all"):
        from bench import perf

        result = perf.run(perf.QUICK if args.quick else perf.FULL, args.out, mode=mode, log=log,
                          device=args.device, dtype=args.dtype)
        log(f"perf done in {result['seconds']:.0f}s -> {args.out / 'perf.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
