"""The attention pass at growing prompt lengths: eager attention's full maps against the answer
rows the audit keeps (models/answer_attention.py), side by side in one process.

For planted cases of 24 to 384 units (about 0.5k to 7k tokens): the seconds of each pass (the
better of two; the audit's pass includes the rollout of the answer rows, computed from the
pass's queries and keys), the peak resident memory each adds over the process's resting size
(the kernel's high-water mark, reset before each pass), and how far the kept rows are from the
eager maps' (max absolute difference). Eager attention runs only while its maps alone fit in
`--eager-gb` (default 8 GB): beyond that it would take the machine's memory.

    python -m bench.attention_pass [--units 24 48 96 192 384] [--eager-gb 8]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import machine
from bench.attributor import HELD_OUT_SEED, RESULTS
from bench.report import fmt, write_json
from relyscope.audits.attributor_cases import CaseMaker
from relyscope.models import CausalLM
from relyscope.models.hooks import attention_maps


def _resident_gb() -> float:
    """The process's resident memory now and its high-water mark since the last reset."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmHWM"].split()[0]) / 1e6


def _reset_peak() -> float:
    """Reset the high-water mark (Linux: `5` to clear_refs) and return the resident GB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _resident_gb()


def _timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Best seconds of two runs, the peak GB it added over the resting size, the last result."""
    best, peak, result = float("inf"), 0.0, None
    for _ in range(2):
        result = None
        resting = _reset_peak()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
        peak = max(peak, _resident_gb() - resting)
    return best, peak, result


def measure(lm: CausalLM, units: int, eager_gb: float) -> dict[str, Any]:
    item = CaseMaker(HELD_OUT_SEED + 1).planted(0, units)
    case = lm.answer(item.case)
    rendered = lm.renderer(case).render()
    start, end = rendered.target_token_span
    positions = rendered.target_predicting_positions
    length = len(rendered.input_ids)
    config = lm.model.config
    maps_gb = config.num_hidden_layers * config.num_attention_heads * length**2 * 4 / 1e9
    row: dict[str, Any] = {"units": units, "tokens": length, "answer_tokens": end - start,
                           "eager_maps_gb": maps_gb}
    seconds, peak, (attention, _score) = _timed(
        lambda: lm.attention_pass(rendered.input_ids, positions, len(rendered.target_ids)))
    row.update(rows_s=seconds, rows_peak_gb=peak)
    if maps_gb <= eager_gb:
        def eager() -> tuple[torch.Tensor, ...]:
            with lm.eager_attention():
                return attention_maps(lm.model, rendered.input_ids, len(rendered.target_ids))[0]
        seconds, peak, maps = _timed(eager)
        rows = torch.tensor(list(positions))
        eager_rows = torch.stack([m[:, rows].float() for m in maps])
        row.update(eager_s=seconds, eager_peak_gb=peak,
                   rows_max_diff=float((attention.rows - eager_rows).abs().max()))
        del maps, eager_rows
    print(row, flush=True)
    del attention
    return row


def write_md(result: dict[str, Any], path: Path) -> None:
    lines = ["# The attention pass: full eager maps vs the answer rows the audit keeps", "",
             f"commit `{result['commit']}`, {result['cpu']}, load {result['loadavg_start']} -> "
             f"{result['loadavg_end']}; `python -m bench.attention_pass`", "",
             "Planted cases (the packaged model's answer); seconds are the better of two passes; "
             "peak GB is the resident memory a pass added over the process's resting size; "
             "the rows' difference is the largest absolute difference from the eager maps' "
             "rows. Eager attention is not run where its maps alone would exceed "
             f"{result['eager_gb']} GB.", "",
             "| units | tokens | eager pass s | eager peak GB | rows + rollout pass s "
             "| its peak GB | speed-up | rows max diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        eager_s = r.get("eager_s")
        lines.append(
            f"| {r['units']} | {r['tokens']} | {fmt(eager_s)} | {fmt(r.get('eager_peak_gb'))} "
            f"| {fmt(r['rows_s'])} | {fmt(r['rows_peak_gb'])} "
            f"| {fmt(eager_s / r['rows_s'] if eager_s else None, 1)} "
            f"| {fmt(r.get('rows_max_diff'), 7)} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[24, 48, 96, 192, 384])
    parser.add_argument("--eager-gb", type=float, default=8.0)
    args = parser.parse_args()
    lm = CausalLM.load()
    measure(lm, 24, 0.0)  # warm-up, not kept
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    result: dict[str, Any] = {"commit": commit, "cpu": machine.cpu_model(),
                              "loadavg_start": machine.load(), "eager_gb": args.eager_gb,
                              "rows": [measure(lm, n, args.eager_gb) for n in args.units]}
    result["loadavg_end"] = machine.load()
    write_json(RESULTS / "attention_pass.json", result)
    write_md(result, RESULTS / "attention_pass.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
