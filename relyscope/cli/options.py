"""Options shared by several commands: the model (`--model/--device/--dtype`) and the audit.

Every command that loads a model adds its flags with `add_model_options` and reads them back
with `model_options`, so the flags are spelled, checked and applied the same way everywhere.
"""

from __future__ import annotations

import argparse
from typing import Literal

from relyscope.audits.registry import default_methods, method_names
from relyscope.case import Claims, parse_claims
from relyscope.config import AuditConfig
from relyscope.errors import CaseError
from relyscope.models.loading import DTYPES, ModelOptions

_DEFAULT_MODEL = ModelOptions()


def add_model_options(parser: argparse.ArgumentParser, *, model_help: str = "") -> None:
    """`--model`, `--device`, `--dtype`; `model_help` is added to --model's help."""
    parser.add_argument("--model", help="a local Hugging Face causal LM folder (default: the "
                                        "packaged SmolLM2-135M-Instruct)" + model_help)
    parser.add_argument("--device", default=_DEFAULT_MODEL.device,
                        help="torch device for the model: cpu, cuda, cuda:1, ... "
                             f"(default {_DEFAULT_MODEL.device})")
    parser.add_argument("--dtype", default=_DEFAULT_MODEL.dtype, choices=DTYPES,
                        help=f"weights and activations (default {_DEFAULT_MODEL.dtype}): "
                             "bfloat16 is about 2x "
                             "faster on CPUs with AVX-512 BF16 and on GPUs, at about 3 "
                             "significant digits")


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The parsed model flags; a bad device is a CaseError naming `device`."""
    return ModelOptions(model=args.model, device=args.device, dtype=args.dtype)


def parse_methods(text: str) -> tuple[str, ...]:
    """An argparse `type`: comma-separated names of registered audit methods."""
    names = method_names()
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not methods:
        raise argparse.ArgumentTypeError("name at least one method")
    unknown = [m for m in methods if m not in names]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown method {unknown[0]!r} (choose from {', '.join(names)})")
    return methods


def parse_claims_option(text: str) -> Claims:
    """An argparse `type`: 'auto' or START:END,... (character spans of the answer)."""
    try:
        claims = parse_claims(text.strip(), "claims")
    except CaseError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if claims is None:
        raise argparse.ArgumentTypeError("claims: give 'auto' or START:END,...")
    return claims


def parse_ablations(value: str) -> int | Literal["auto"]:
    """An argparse `type` for --ablations: a mask count or 'auto'."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"ablations: give a number of masks or 'auto', not {value!r}") from None


def add_audit_options(parser: argparse.ArgumentParser,
                      methods: tuple[str, ...] | None = None) -> None:
    """What an audit runs and within which budget (see `audit_config_from`); `methods`: the
    default of --methods (default: the registry's default methods)."""
    names = method_names()
    default = methods if methods is not None else default_methods()
    parser.add_argument("--methods", type=parse_methods, default=tuple(default),
                        help=f"comma-separated, from {','.join(names)} "
                             f"(default {','.join(default)})")
    parser.add_argument("--granularity", choices=["source", "sentence"], default="source")
    parser.add_argument("--removal", choices=["remove", "placeholder"], default="remove")
    parser.add_argument("--ablations", type=parse_ablations, default=64,
                        help="random masks (default 64), or 'auto': rounds of masks until the "
                             "cross-validated LDS and the top-3 units settle (capped)")
    parser.add_argument("--tracing-samples", type=int, default=3)
    parser.add_argument("--max-passes", type=int, help="forward-pass budget per case")
    parser.add_argument("--max-seconds", type=float, help="time budget per case")
    parser.add_argument("--regenerate", action="store_true",
                        help="also regenerate greedily without each unit (answer flips)")
    parser.add_argument("--stability", action="store_true",
                        help="re-run leave-one-out under a paraphrased query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true",
                        help="the fast preset: attention + the learned attributor (a reliance "
                             "estimate) + its verification masks, nothing else (--methods is "
                             "ignored)")
    parser.add_argument("--verify", type=int, metavar="K",
                        help="the learned estimate's verification masks (default 12; it is "
                             "refit to them from 8 on, sparsely from 10 where that fits "
                             "them better; fewer are faster and less faithful, "
                             "see docs/learned-attributor.md)")
    parser.add_argument("--claims", type=parse_claims_option,
                        help="attribute each claim of the answer: 'auto' (its sentences) or "
                             "START:END,... character spans of the answer")


def audit_config_from(args: argparse.Namespace) -> AuditConfig:
    """The config of the audit flags; per-method flags go to the methods that run."""
    per_method = {"ablation": {"ablations": args.ablations},
                  "tracing": {"samples": args.tracing_samples},
                  "loo": {"regenerate": args.regenerate}}
    learned = ({"learned": {"verify": args.verify}}
               if getattr(args, "verify", None) is not None else {})
    fast = getattr(args, "fast", False)
    if learned and not fast and "learned" not in args.methods:
        raise CaseError("verify", "the learned method's verification masks: give --fast or "
                                  "name learned in --methods")
    return AuditConfig.from_dict({
        "methods": list(args.methods),
        "method_settings": {name: values for name, values in (per_method | learned).items()
                            if name in args.methods},
        "granularity": args.granularity, "removal": args.removal,
        "max_forward_passes": args.max_passes, "max_seconds": args.max_seconds,
        "stability": args.stability, "seed": args.seed,
        "claims": getattr(args, "claims", None),
        **({"preset": "fast", "methods": None, "method_settings": learned} if fast else {})})
