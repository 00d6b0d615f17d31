"""`relyscope gate`: fail CI when a retrieval change lowers reliance (exit 0, 1 or 2)."""

from __future__ import annotations

import argparse
import sys

from relyscope.cli.options import add_model_options, model_options
from relyscope.gate import GateSettings, compare
from relyscope.gate.runs import default_cache_file, load_model, read_eval, run_configuration
from relyscope.gate.writers import gate_markdown, write_gate_outputs
from relyscope.report import read_reports


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    gate = sub.add_parser("gate", help="fail when a retrieval change lowers reliance "
                                       "(exit 0 pass, 1 regression, 2 usage/input error)")
    gate.add_argument("--eval", help="EVAL.jsonl: one {id, query} per line")
    gate.add_argument("--baseline", help="baseline retrieval configuration (JSON or TOML)")
    gate.add_argument("--candidate", help="candidate retrieval configuration (JSON or TOML)")
    gate.add_argument("--baseline-results", help="finished baseline reports (.jsonl)")
    gate.add_argument("--candidate-results", help="finished candidate reports (.jsonl)")
    gate.add_argument("--save-results", help="folder to keep each side's reports.jsonl")
    gate.add_argument("--thresholds", help="tolerances and CI settings (JSON or TOML)")
    add_model_options(gate)
    gate.add_argument("--cache", help="score cache file (default $RELYSCOPE_HOME/cache/"
                                      "scores.sqlite)")
    gate.add_argument("--no-cache", action="store_true", help="do not keep scores on disk")
    gate.add_argument("--junit", help="write JUnit XML here")
    gate.add_argument("--markdown", help="write a Markdown summary here")
    gate.add_argument("--json", help="write the comparison as JSON here")
    gate.set_defaults(func=cmd_gate)


def cmd_gate(args: argparse.Namespace) -> int:
    settings = GateSettings.from_file(args.thresholds)
    if args.baseline_results or args.candidate_results:
        if not (args.baseline_results and args.candidate_results):
            raise ValueError("give both --baseline-results and --candidate-results")
        baseline = read_reports(args.baseline_results)
        candidate = read_reports(args.candidate_results)
    else:
        if not (args.eval and args.baseline and args.candidate):
            raise ValueError("give --eval, --baseline and --candidate (or the two --*-results)")
        options = model_options(args)
        rows = read_eval(args.eval)
        cache_file = None if args.no_cache else args.cache or default_cache_file()
        lm = load_model(options, cache_file=cache_file)
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
