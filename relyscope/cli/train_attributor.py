"""`relyscope train-attributor`: fit the learned attributor's per-head weights for a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relyscope.cli.options import add_model_options, model_options
from relyscope.models.packaged import relyscope_home


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("train-attributor",
                         help="fit the learned attributor (method `learned`, the fast path) "
                              "on ablation outcomes of generated cases")
    add_model_options(cmd)
    cmd.add_argument("--cases", type=int, default=40,
                     help="training + validation cases (default 40)")
    cmd.add_argument("--masks", type=int, default=32, help="ablation masks per case (default 32)")
    cmd.add_argument("--keep-prob", type=float, default=0.5)
    cmd.add_argument("--val-fraction", type=float, default=0.25,
                     help="share of cases held out for the validation LDS (default 0.25)")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--out", help="weights file (default: the packaged attributor-<model>.json)")
    cmd.add_argument("--cache-dir", help="ablation outcomes per case (default "
                                         "$RELYSCOPE_HOME/attributor-cache); reruns resume")
    cmd.set_defaults(func=cmd_train_attributor)


def cmd_train_attributor(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from relyscope.audits.attributor_cases import training_cases
    from relyscope.audits.attributor_training import train
    from relyscope.audits.attributor_weights import build, packaged_path, save

    if args.cases < 8:
        raise ValueError("--cases must be at least 8 (a validation split and CV folds)")
    options = model_options(args)
    print(f"loading model {options.describe()} ...", file=sys.stderr)
    lm = options.load()
    cases = training_cases(args.cases, args.seed)
    cache = Path(args.cache_dir) if args.cache_dir else relyscope_home() / "attributor-cache"
    result = train(lm, cases, masks=args.masks, keep_prob=args.keep_prob, seed=args.seed,
                   val_fraction=args.val_fraction, cache_dir=cache,
                   progress=lambda items: tqdm(items, desc="cases", unit="case", file=sys.stderr))
    data = result.train + result.val
    kinds: dict[str, int] = {}
    for d in data:
        kinds[f"{d.kind}/{d.granularity}"] = kinds.get(f"{d.kind}/{d.granularity}", 0) + 1
    command = (f"relyscope train-attributor --cases {args.cases} --masks {args.masks} "
               f"--keep-prob {args.keep_prob} --val-fraction {args.val_fraction} "
               f"--seed {args.seed}" + (f" --model {args.model}" if args.model else ""))
    provenance = {
        "model_revision": lm.info.revision, "dtype": lm.info.dtype,
        "training_set": "relyscope.audits.attributor_cases.training_cases: planted single and "
                        "redundant facts, real text of the demo corpus (source and sentence "
                        "units), tool traces",
        "cases_by_kind": kinds, "cases": len(data), "train_cases": len(result.train),
        "validation_cases": len(result.val), "masks_per_case": args.masks,
        "masks": int(sum(len(d.masks) for d in data)), "keep_prob": args.keep_prob,
        "seed": args.seed, "target": "log p/(1-p) of the answer",
        "objective": "ridge on per-case centred (mask @ head features); prediction = sum of "
                     "kept units' scores",
        "alpha": result.alpha, "cv_lds_by_alpha": result.cv,
        "validation_lds": round(result.validation_lds, 4),
        "validation_lds_by_kind": {k: round(v, 4) for k, v in
                                   result.validation_by_kind.items()},
        "validation_lds_attention_uniform_heads": round(result.attention_lds, 4),
        "forward_passes": int(sum(d.passes for d in data)),
        "scoring_seconds": round(sum(d.seconds for d in data), 1),
        "command": command}
    weights = build(lm.info.id, lm.num_layers, lm.num_heads, result.weights, provenance)
    out = Path(args.out) if args.out else packaged_path(lm.info.id)
    save(weights, out)
    print(f"validation LDS {result.validation_lds:.3f} on {len(result.val)} held-out cases "
          f"(uniform heads: {result.attention_lds:.3f}); weights -> {out}")
    return 0
