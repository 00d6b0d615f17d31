"""The `relyscope` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from relyscope.case import CaseError, load_case


def example_case_path() -> Path:
    return Path(str(resources.files("relyscope") / "data" / "example_case.json"))


def _cmd_demo(args: argparse.Namespace) -> int:
    from relyscope.models import CausalLM, Variant

    case = load_case(args.case or example_case_path())
    print(f"loading model {args.model or 'packaged default'} ...", file=sys.stderr)
    lm = CausalLM.load(args.model)
    case = lm.answer(case)
    renderer = lm.renderer(case)
    units = renderer.units
    variants = [renderer.render()] + [renderer.render(Variant.without([u.id])) for u in units]
    full, *without = lm.score(variants)
    print(f"case {case.id}: {case.query}")
    print(f"answer: {case.answer}")
    print(f"answer log-prob: {full.total:.3f}")
    print("leave-one-out log-prob drop per unit:")
    for unit, score in sorted(zip(units, without, strict=True), key=lambda p: p[1].total):
        print(f"  {unit.id:<20} {unit.kind:<12} {full.total - score.total:8.3f}")
    print(f"cost: {lm.cost.forward_passes} forward passes, {lm.cost.seconds:.2f} s scoring")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relyscope", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="audit the bundled example case with the packaged model")
    demo.add_argument("--case", help="a case JSON file instead of the bundled example")
    demo.add_argument("--model", help="a local Hugging Face causal LM folder")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CaseError as err:
        print(f"relyscope: invalid case: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"relyscope: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
