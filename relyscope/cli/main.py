"""The `relyscope` command line: demo, audit, report (more subcommands register themselves)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from relyscope.case import Case, CaseError, iter_cases, load_case
from relyscope.config import AuditConfig

DTYPES = ("float32", "bfloat16", "float16")  # CausalLM.load(dtype=...) names

DEMO_OUT = Path("out")


def example_case_path() -> Path:
    return Path(str(resources.files("relyscope") / "data" / "example_case.json"))


def add_audit_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs audits."""
    parser.add_argument("--methods", default="attention,loo,ablation,tools,tracing",
                        help="comma-separated: attention,loo,ablation,tools,tracing")
    parser.add_argument("--granularity", choices=["source", "sentence"], default="source")
    parser.add_argument("--removal", choices=["remove", "placeholder"], default="remove")
    parser.add_argument("--ablations", type=int, default=64, help="random masks (default 64)")
    parser.add_argument("--tracing-samples", type=int, default=3)
    parser.add_argument("--max-passes", type=int, help="forward-pass budget per case")
    parser.add_argument("--max-seconds", type=float, help="time budget per case")
    parser.add_argument("--regenerate", action="store_true",
                        help="also regenerate greedily without each unit (answer flips)")
    parser.add_argument("--stability", action="store_true",
                        help="re-run leave-one-out under a paraphrased query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="a local Hugging Face causal LM folder "
                                        "(default: the packaged SmolLM2-135M-Instruct)")
    parser.add_argument("--device", default="cpu", help="torch device for the model "
                                                        "(cpu, cuda, cuda:1, ...)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="weights and activations: bfloat16 is about 2x faster on CPUs "
                             "with AVX-512 BF16 and on GPUs, at about 3 significant digits")


def audit_config_from(args: argparse.Namespace) -> AuditConfig:
    return AuditConfig.from_dict({
        "methods": args.methods, "granularity": args.granularity, "removal": args.removal,
        "ablations": args.ablations, "tracing_samples": args.tracing_samples,
        "max_forward_passes": args.max_passes, "max_seconds": args.max_seconds,
        "regenerate": args.regenerate, "stability": args.stability, "seed": args.seed})


def _audit_cases(cases: Sequence[Case], args: argparse.Namespace) -> list[Any]:
    from tqdm import tqdm

    from relyscope.audits import run_audit
    from relyscope.models import CausalLM

    config = audit_config_from(args)
    print(f"loading model {args.model or 'packaged default'} ...", file=sys.stderr)
    lm = CausalLM.load(args.model, device=args.device, dtype=args.dtype)
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


def _write_outputs(reports: list[Any], out: str | None, html: str | None) -> None:
    from relyscope.report import jsonl_line, write_html, write_json

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
        write_html(reports, html)
        print(f"wrote {html}", file=sys.stderr)


def _cmd_audit(args: argparse.Namespace) -> int:
    from relyscope.report import markdown

    cases = list(iter_cases(args.cases))
    reports = _audit_cases(cases, args)
    print(markdown(reports))
    _write_outputs(reports, args.out, args.html)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from relyscope.report import markdown

    case = load_case(args.case or example_case_path())
    reports = _audit_cases([case], args)
    print(markdown(reports))
    _write_outputs(reports, str(DEMO_OUT / "demo-report.json"), str(DEMO_OUT / "demo-report.html"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from relyscope.report import markdown, read_reports

    reports = read_reports(args.reports)
    if args.html:
        _write_outputs(reports, None, args.html)
    print(markdown(reports))
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from relyscope.gate import GateSettings, compare
    from relyscope.gate.writers import gate_markdown, write_gate_outputs
    from relyscope.report import read_reports

    settings = GateSettings.from_file(args.thresholds)
    if args.baseline_results or args.candidate_results:
        if not (args.baseline_results and args.candidate_results):
            raise ValueError("give both --baseline-results and --candidate-results")
        baseline = read_reports(args.baseline_results)
        candidate = read_reports(args.candidate_results)
    else:
        if not (args.eval and args.baseline and args.candidate):
            raise ValueError("give --eval, --baseline and --candidate (or the two --*-results)")
        from relyscope.gate.runs import read_eval, run_configuration
        from relyscope.models import CausalLM
        from relyscope.models.cache import SqliteScoreCache
        from relyscope.models.packaged import relyscope_home

        rows = read_eval(args.eval)
        cache = None if args.no_cache else SqliteScoreCache(
            args.cache or relyscope_home() / "cache" / "scores.sqlite")
        lm = CausalLM.load(args.model, cache=cache)
        baseline = run_configuration(rows, args.baseline, lm, save=args.save_results,
                                     label="baseline")
        candidate = run_configuration(rows, args.candidate, lm, save=args.save_results,
                                      label="candidate")
        print(f"gate: {lm.cost.forward_passes} forward passes, {lm.cost.cache_hits} scores "
              f"from the cache", file=sys.stderr)
    result = compare(baseline, candidate, settings)
    write_gate_outputs(result, junit=args.junit, markdown=args.markdown, json_path=args.json)
    print(gate_markdown(result))
    return 0 if result.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relyscope",
        description="Which sources and tool outputs did an LLM answer rely on?")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="audit the bundled example case end to end")
    demo.add_argument("--case", help="a case JSON file instead of the bundled example")
    add_audit_options(demo)
    demo.set_defaults(func=_cmd_demo)

    audit = sub.add_parser("audit", help="audit a case file (.json) or case lines (.jsonl)")
    audit.add_argument("cases", help="CASE.json or CASES.jsonl")
    audit.add_argument("--out", help="report.json (one case) or reports.jsonl")
    audit.add_argument("--html", help="write a self-contained HTML report here")
    add_audit_options(audit)
    audit.set_defaults(func=_cmd_audit)

    report = sub.add_parser("report", help="render saved reports as Markdown and HTML")
    report.add_argument("reports", help="report.json or reports.jsonl")
    report.add_argument("--html", help="write a self-contained HTML report here")
    report.set_defaults(func=_cmd_report)

    from relyscope.cli.retrieval import add_commands as add_retrieval_commands

    add_retrieval_commands(sub)

    from relyscope.cli.audit_logs import add_commands as add_log_commands

    add_log_commands(sub)

    from relyscope.cli.serve import add_commands as add_service_commands

    add_service_commands(sub)

    from relyscope.cli.worker import add_commands as add_worker_commands

    add_worker_commands(sub)

    gate = sub.add_parser("gate", help="fail when a retrieval change lowers reliance "
                                       "(exit 0 pass, 1 regression, 2 usage/input error)")
    gate.add_argument("--eval", help="EVAL.jsonl: one {id, query} per line")
    gate.add_argument("--baseline", help="baseline retrieval configuration (JSON or TOML)")
    gate.add_argument("--candidate", help="candidate retrieval configuration (JSON or TOML)")
    gate.add_argument("--baseline-results", help="finished baseline reports (.jsonl)")
    gate.add_argument("--candidate-results", help="finished candidate reports (.jsonl)")
    gate.add_argument("--save-results", help="folder to keep each side's reports.jsonl")
    gate.add_argument("--thresholds", help="tolerances and CI settings (JSON or TOML)")
    gate.add_argument("--model", help="a local Hugging Face causal LM folder")
    gate.add_argument("--cache", help="score cache file (default $RELYSCOPE_HOME/cache/"
                                      "scores.sqlite)")
    gate.add_argument("--no-cache", action="store_true", help="do not keep scores on disk")
    gate.add_argument("--junit", help="write JUnit XML here")
    gate.add_argument("--markdown", help="write a Markdown summary here")
    gate.add_argument("--json", help="write the comparison as JSON here")
    gate.set_defaults(func=_cmd_gate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads spin-wait by default; on shared cores that made 2 threads 3.3x slower
    # than 1 (bench/results/perf.json). Passive waiting must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CaseError as err:
        print(f"relyscope: invalid input: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"relyscope: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
