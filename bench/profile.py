"""Where an ablation audit's time goes: cProfile of one n=64 audit on a 5-source case.

`python -m bench.profile [OUT]` writes the top functions by own time and the share of the
audit spent in matrix multiplies (torch linear), attention and everything else.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.machine import load  # noqa: E402
from bench.perf import fresh, perf_case  # noqa: E402
from relyscope.audits import run_audit  # noqa: E402
from relyscope.config import AuditConfig
from relyscope.models import CausalLM  # noqa: E402

BUCKETS = {"matmul (torch linear)": ("_nn.linear",),
           "attention (sdpa)": ("scaled_dot_product_attention",),
           "KV cache copies": ("deepcopy", "batch_repeat_interleave", "_reconstruct",
                               "index_select"),
           "rendering + tokenising": ("apply_chat_template", "_encode_plus", "__call__' of "
                                      "'tokenizers", "encode_batch")}


def main(out: Path) -> str:
    lm = CausalLM.load()
    case = perf_case(0)
    config = AuditConfig(methods=("ablation",), ablations=64)
    run_audit(case, fresh(lm, "warm"), config)  # warm-up
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    report = run_audit(case, fresh(lm, "profiled"), config)
    profiler.disable()
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    own: dict[str, float] = {}
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        label = f"{filename}:{line}({name})"
        own[label] = own.get(label, 0.0) + tottime
    buckets = dict.fromkeys(BUCKETS, 0.0)
    for label, value in own.items():
        for bucket, needles in BUCKETS.items():
            if any(n in label for n in needles):
                buckets[bucket] += value
                break
    text = io.StringIO()
    text.write(f"one ablation audit (n=64, 5 sources): {seconds:.2f} s, "
               f"{report.cost['forward_passes']} passes, {report.cost['tokens']} tokens, "
               f"load average {load()}\n\nshare of the audit's time by own time:\n")
    for bucket, value in buckets.items():
        text.write(f"  {bucket:28s} {value:7.2f} s  {100 * value / seconds:5.1f}%\n")
    rest = seconds - sum(buckets.values())
    text.write(f"  {'everything else':28s} {rest:7.2f} s  {100 * rest / seconds:5.1f}%\n\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue(), encoding="utf-8")
    return text.getvalue()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent / "results" / "profile.txt")
    print(main(target)[:3000])
