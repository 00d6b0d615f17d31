"""The `relyscope` command line: one module per command, each adding its own subparser."""

from __future__ import annotations

import os

# OpenMP threads spin-wait by default; on shared cores that made 2 threads 3.3x slower than 1
# (bench/results/perf.json). Passive waiting must be set before torch loads, and importing the
# commands below loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from relyscope.cli import (  # noqa: E402
    audit,
    audit_logs,
    demo,
    gate,
    report,
    retrieval,
    serve,
    worker,
)
from relyscope.errors import CaseError  # noqa: E402

#: In the order `relyscope --help` lists them.
COMMANDS = (demo, audit, report, retrieval, audit_logs, serve, worker, gate)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relyscope",
        description="Which sources and tool outputs did an LLM answer rely on?")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; invalid input (named field) and missing files exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CaseError as err:
        print(f"relyscope: invalid input: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"relyscope: {err}", file=sys.stderr)
        return 2
