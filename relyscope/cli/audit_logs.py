"""`relyscope audit-logs`: the batch audit of logged conversations (resumable)."""

from __future__ import annotations

import argparse
import sys

from relyscope.batch.audit_logs import audit_logs
from relyscope.cli.options import (
    add_audit_options,
    add_model_options,
    audit_config_from,
    model_options,
)
from relyscope.ingest.records import FORMATS

DEFAULT_METHODS = ("attention", "loo")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "audit-logs", help="audit every answer of logged conversations (resumable)",
        description="Audit the answers in OpenAI chat JSONL, OpenInference / OTel GenAI span or "
                    "LangSmith run logs into a results JSONL; re-running skips the records "
                    "already there.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="log files or folders")
    parser.add_argument("--out", required=True, help="results JSONL (appended to, resumable)")
    parser.add_argument("--html", help="write a summary HTML of all results here")
    parser.add_argument("--annotations",
                        help="write the scores as OpenInference span annotations (JSONL) here")
    parser.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                        help="log format (default: detected per file)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each with its own copy of the model")
    parser.add_argument("--strict-arguments", action="store_true",
                        help="records whose tool-call arguments are not valid JSON are errors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_audit_options(parser, methods=DEFAULT_METHODS)
    add_model_options(parser)
    parser.set_defaults(func=cmd_audit_logs)


def cmd_audit_logs(args: argparse.Namespace) -> int:
    options = model_options(args)
    config = audit_config_from(args)
    print(f"model: {options.describe()}; methods: {','.join(config.methods)}", file=sys.stderr)
    summary = audit_logs(args.paths, args.out, config=config, model=options,
                         workers=args.workers, html=args.html, annotations=args.annotations,
                         fmt=None if args.format == "auto" else args.format,
                         parse_arguments=args.strict_arguments, progress=not args.no_progress)
    print(summary.describe(), file=sys.stderr)
    for what, path in (("summary", summary.html), ("annotations", summary.annotations)):
        if path is not None:
            print(f"wrote {what} {path}", file=sys.stderr)
    return 0
