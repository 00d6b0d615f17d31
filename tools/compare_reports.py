"""Compare two saved reports of the same case, exactly: everything an audit computes (units,
scores, verdicts, faithfulness, method extras, answer, pass counts), not timings and not the
settings. Used to show that a refactor leaves `make demo` unchanged:

    python -m tools.compare_reports BEFORE.json AFTER.json    # exit 1 when they differ

Keys present on one side only are listed (an added report field shows up that way).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

COMPARED = ("case_id", "answer", "answer_logprob", "answer_tokens", "partial", "units",
            "verdicts", "faithfulness", "methods", "errors", "warnings")
COUNTS = ("forward_passes", "model_calls", "tokens", "cache_hits", "cache_misses")


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}: keys {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        for key in sorted(set(a) & set(b)):
            out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = a == b or (math.isnan(a) and math.isnan(b))
        return [] if same else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in COMPARED:
        problems += differences(before.get(key), after.get(key), key)
    problems += differences({k: before["cost"].get(k) for k in COUNTS},
                            {k: after["cost"].get(k) for k in COUNTS}, "cost")
    problems += differences(
        {k: v["forward_passes"] for k, v in before["cost"].get("per_method", {}).items()},
        {k: v["forward_passes"] for k, v in after["cost"].get("per_method", {}).items()},
        "cost.per_method")
    return problems


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as one, open(sys.argv[2], encoding="utf-8") as two:
        found = compare(json.load(one), json.load(two))
    print("\n".join(found) or "equal: units, scores, verdicts, faithfulness, method extras, "
                              "answer and pass counts (exact float equality)")
    sys.exit(1 if found else 0)
