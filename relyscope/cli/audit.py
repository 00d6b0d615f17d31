"""`relyscope audit`: audit case files; and the audit loop and output writing `demo` shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relyscope.audits import run_audit
from relyscope.case import Case, iter_cases
from relyscope.cli.options import (
    add_audit_options,
    add_model_options,
    audit_config_from,
    model_options,
)
from relyscope.report import jsonl_line, markdown, write_html, write_json
from relyscope.report_model import Report


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = sub.add_parser("audit", help="audit a case file (.json) or case lines (.jsonl)")
    audit.add_argument("cases", help="CASE.json or CASES.jsonl")
    audit.add_argument("--out", help="report.json (one case) or reports.jsonl")
    audit.add_argument("--html", help="write a self-contained HTML report here")
    add_audit_options(audit)
    add_model_options(audit)
    audit.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    cases = list(iter_cases(args.cases))
    reports = audit_cases(cases, args)
    print(markdown(reports))
    write_outputs(reports, args.out, args.html)
    return 0


def audit_cases(cases: Sequence[Case], args: argparse.Namespace) -> list[Report]:
    """Audit each case with the model and audit settings of `args`, with a progress bar."""
    from tqdm import tqdm

    config = audit_config_from(args)
    options = model_options(args)
    print(f"loading model {options.describe()} ...", file=sys.stderr)
    lm = options.load()
    reports = []
    with tqdm(total=len(cases), unit="case", file=sys.stderr, disable=None) as bar:
        def progress(event: dict[str, Any]) -> None:
            if event["event"] == "method_started":
                bar.set_postfix_str(event["method"])
        for case in cases:
            bar.set_description(case.id)
            reports.append(run_audit(case, lm, config, progress=progress))
            bar.update(1)
    return reports


def write_outputs(reports: Sequence[Report], out: str | None, html: str | None) -> None:
    """`out`: one report's .json or every report's .jsonl; `html`: one HTML page of all."""
    if out:
        path = Path(out)
        if path.suffix == ".jsonl":
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as handle:
                handle.writelines(jsonl_line(r) for r in reports)
        elif len(reports) == 1:
            write_json(reports[0], path)
        else:
            raise ValueError(f"--out {out}: several reports need a .jsonl file")
        print(f"wrote {path}", file=sys.stderr)
    if html:
        write_html(list(reports), html)
        print(f"wrote {html}", file=sys.stderr)
