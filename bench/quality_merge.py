"""`python -m bench.quality_merge OUT_DIR SHARD.json... [--note TEXT]`: pool shard runs of
the quality benchmark into OUT_DIR/<--stem>.{json,md} (see bench.quality.merge); each --note
is added to the notes (say how the shards were run and stopped)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.quality import merge
from bench.quality_md import markdown
from bench.report import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality_merge", description=__doc__)
    parser.add_argument("out", type=Path, help="folder for quality.json and quality.md")
    parser.add_argument("shards", type=Path, nargs="+", help="the shard runs' JSON files")
    parser.add_argument("--note", action="append", default=[], help="a note to add")
    parser.add_argument("--stem", default="quality", help="results file stem (default quality)")
    args = parser.parse_args(argv)
    parts = [json.loads(path.read_text(encoding="utf-8")) for path in args.shards]
    result = merge(parts)
    result["notes"] += args.note
    write_json(args.out / f"{args.stem}.json", result)
    (args.out / f"{args.stem}.md").write_text(markdown(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
