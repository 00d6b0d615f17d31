"""`relyscope report`: re-render saved reports as Markdown (and HTML)."""

from __future__ import annotations

import argparse

from relyscope.cli.audit import write_outputs
from relyscope.errors import CaseError
from relyscope.report import markdown, read_reports


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = sub.add_parser("report", help="render saved reports as Markdown and HTML")
    report.add_argument("reports", help="report.json or reports.jsonl")
    report.add_argument("--html", help="write a self-contained HTML report here")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    reports = read_reports(args.reports)
    if not reports:
        raise CaseError("", "no reports in the file", record=args.reports)
    if args.html:
        write_outputs(reports, None, args.html)
    print(markdown(reports))
    return 0
