"""`relyscope audit`: audit case files; and the audit loop and output writing `demo` shares.

With CASES.jsonl and ``--out reports.jsonl`` each finished case's report is appended at once as
one durable line (`relyscope.batch.results.ResultsFile`, as audit-logs does), and a re-run
audits only the cases whose id has no line there yet: a killed run is resumed by running it
again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from relyscope.batch.results import ResultsFile
from relyscope.case import Case, iter_cases
from relyscope.cli.options import (
    add_audit_options,
    add_model_options,
    audit_config_from,
    model_options,
)
from relyscope.errors import CaseError
from relyscope.report import jsonl_line, markdown, read_reports, write_html, write_json
from relyscope.report_model import Report


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = sub.add_parser("audit", help="audit a case file (.json) or case lines (.jsonl)")
    audit.add_argument("cases", help="CASE.json or CASES.jsonl")
    audit.add_argument("--out", help="report.json (one case) or reports.jsonl (appended one "
                                     "line per finished case; a re-run audits only the cases "
                                     "not in it yet)")
    audit.add_argument("--html", help="write a self-contained HTML report here")
    add_audit_options(audit)
    add_model_options(audit)
    audit.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    cases = list(iter_cases(args.cases))  # every case is checked before the first audit
    _check_unique_ids(cases, args.cases)
    if args.out and Path(args.out).suffix == ".jsonl":
        reports = audit_into(cases, Path(args.out), args)
        print(markdown(reports))
        write_outputs(reports, None, args.html)
        return 0
    reports = audit_cases(cases, args)
    print(markdown(reports))
    write_outputs(reports, args.out, args.html)
    return 0


def _check_unique_ids(cases: Sequence[Case], path: str) -> None:
    """Case ids key the lines of reports.jsonl (and so resuming): they must be unique."""
    seen: dict[str, int] = {}
    for number, case in enumerate(cases, 1):
        if case.id in seen:
            raise CaseError("id", f"duplicate case id {case.id!r} (also case {seen[case.id]})",
                            record=f"{path}: case {number}")
        seen[case.id] = number


def audit_into(cases: Sequence[Case], out: Path, args: argparse.Namespace) -> list[Report]:
    """Audit the cases that have no line in `out` yet, appending each report as it finishes;
    return the reports of all `cases` (earlier runs' included) in case order."""
    with ResultsFile.open(out, key="case_id") as results:
        todo = [case for case in cases if case.id not in results.done]
        if results.repaired_tail:
            print(f"{out}: cut away a torn final line left by an interrupted run",
                  file=sys.stderr)
        if len(todo) < len(cases):
            print(f"resuming: {len(cases) - len(todo)} of {len(cases)} cases already in {out}; "
                  f"auditing {len(todo)}", file=sys.stderr)
        if todo:
            audit_cases(todo, args, done=len(cases) - len(todo),
                        on_report=lambda report: results.append(report.to_dict()))
    order = {case.id: index for index, case in enumerate(cases)}
    return sorted((r for r in read_reports(out) if r.case_id in order),
                  key=lambda r: order[r.case_id])


def audit_cases(cases: Sequence[Case], args: argparse.Namespace, *, done: int = 0,
                on_report: Callable[[Report], None] | None = None) -> list[Report]:
    """Audit each case with the model and audit settings of `args`, with a progress bar that
    starts at `done` (cases finished by an earlier run); `on_report` gets each report as it
    finishes."""
    from tqdm import tqdm

    from relyscope.audits import run_audit

    config = audit_config_from(args)
    options = model_options(args)
    print(f"loading model {options.describe()} ...", file=sys.stderr)
    lm = options.load()
    reports = []
    with tqdm(total=done + len(cases), initial=done, unit="case", file=sys.stderr,
              disable=None, dynamic_ncols=True) as bar:
        def progress(event: dict[str, Any]) -> None:
            if event["event"] == "method_started":
                bar.set_postfix_str(event["method"])
        for case in cases:
            bar.set_description(case.id)
            report = run_audit(case, lm, config, progress=progress)
            if on_report is not None:
                on_report(report)
            reports.append(report)
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
