"""What machine a benchmark ran on, how loaded it was, and its measured matmul rate."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    import transformers

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "loadavg_start": load()}


def matmul_gflops(size: int = 1024, seconds: float = 2.0, *, dtype: torch.dtype = torch.float32,
                  device: str = "cpu") -> float:
    """torch.matmul rate in GFLOP/s (2 n^3 per product) at `dtype`, best of short rounds."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        torch.matmul(a, b)
        if a.is_cuda:
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX); without it
    bfloat16 runs emulated and is slower than float32."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))
