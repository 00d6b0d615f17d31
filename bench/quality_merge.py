"""`python -m bench.quality_merge OUT_DIR SHARD.json...`: pool shard runs of the quality
benchmark into OUT_DIR/quality.{json,md} (see bench.quality.merge)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.quality import merge
from bench.quality_md import markdown
from bench.report import write_json


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    parts = [json.loads(Path(p).read_text(encoding="utf-8")) for p in argv[1:]]
    result = merge(parts)
    write_json(out / "quality.json", result)
    (out / "quality.md").write_text(markdown(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
