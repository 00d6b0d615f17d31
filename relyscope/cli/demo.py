"""`relyscope demo`: a full audit of the bundled example case, report printed and written."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from relyscope.case import load_case
from relyscope.cli.audit import audit_cases, write_outputs
from relyscope.cli.options import add_audit_options, add_model_options
from relyscope.report import markdown

DEMO_OUT = Path("out")


def example_case_path() -> Path:
    return Path(str(resources.files("relyscope") / "data" / "example_case.json"))


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="audit the bundled example case end to end")
    demo.add_argument("--case", help="a case JSON file instead of the bundled example")
    add_audit_options(demo)
    add_model_options(demo)
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    case = load_case(args.case or example_case_path())
    reports = audit_cases([case], args)
    print(markdown(reports))
    write_outputs(reports, str(DEMO_OUT / "demo-report.json"), str(DEMO_OUT / "demo-report.html"))
    return 0
