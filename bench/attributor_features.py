"""Other inputs and models for the learned attributor, from the same attention pass.

python -m bench.attributor_features: for the 110 training cases of `relyscope train-attributor
--cases 110` and the 50 held-out cases of `python -m bench.attributor --steps quality`, one
attention pass each (hooked to keep what that pass computes anyway: each layer's value
vectors, the final residual stream and the answer tokens' log-probs), then each recipe below
fit on the training split as train-attributor fits (ridge, penalty by grouped
cross-validation over training cases) and scored on the validation split and the held-out
cases. Mask outcomes come from those two caches (scored where missing). Every recipe costs no
forward pass beyond the attention pass.

Feature sets (per unit, one column per head unless said):
- attention: the shipped features (attention mass from the answer rows, sinks excluded)
- attention, mean over answer rows: divided by the answer's length
- attention, rows weighted by the answer token's probability
- attention, rows weighted by 1 - probability / by the surprisal (capped at 10 nats)
- value-norm attention: each key column scaled by the norm of the head's output for that
  token before renormalising (Kobayashi et al.)
- direct logit contribution (signed): attention times the head's output for each unit token,
  dotted with the answer token's unembedding (mean-centred over the vocabulary, through the
  final norm's gain and the row's RMS)
- attention and the direct logit contribution side by side
- attention + rollout through other tokens: beside the shipped features, per head the
  attention mass to each unit from the queries outside the answer rows, each weighted by how
  much the answer rows read it through the layers above (attention rollout of the sink-free
  head mean)
- attention + rollout weight per layer: beside the shipped features, per layer the rollout
  weight on each unit's own tokens
Models on the shipped features: separate weights for sentence and source units; the ridge
scores raised to a power (sign kept; 2); a two-layer network (32 hidden units) trained on the
per-case Pearson correlation of predicted and actual mask outcomes.
Writes bench/results/attributor-features.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import machine
from bench.attributor import HELD_OUT_SEED, RESULTS, _lds, _mean, held_out_quality
from bench.report import fmt, write_json
from relyscope.audits.attributor_cases import TrainingCase, training_cases
from relyscope.audits.attributor_features import row_features
from relyscope.audits.attributor_training import (
    CaseOutcomes,
    case_outcomes,
    choose_alpha,
    ridge,
    split,
)
from relyscope.audits.base import AuditContext, Budget
from relyscope.audits.provenance import SINK_TOKENS, without_sinks
from relyscope.config import AuditConfig
from relyscope.models import CausalLM
from relyscope.models.hooks import attention_maps, decoder_layers, forward_hooks
from relyscope.models.packaged import relyscope_home


@dataclasses.dataclass
class PassOutputs:
    """What one attention pass gives per case: per answer row, unit and head the attention
    mass [A, U, F], value-norm attention summed over rows [U, F], the signed direct logit
    contribution [U, F], the answer tokens' log-probs [A], and the rollout features
    [U, F] and [U, layers] (`_rollout_features`)."""

    rows: np.ndarray
    value_norm: np.ndarray
    direct_logit: np.ndarray
    logprobs: np.ndarray
    rollout_indirect: np.ndarray
    rollout_mass: np.ndarray


def _rollout_features(maps: Sequence[torch.Tensor], rows: torch.Tensor,
                      per_unit: Callable[[torch.Tensor], torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """What flows to a unit through other tokens. Each layer's queries are weighted by how
    much the answer rows read them from the layers above (attention rollout, Abnar & Zuidema:
    0.5 A + 0.5 I with A the head mean of the sink-free attention, so no weight is lost to the
    sinks; propagated down from 1 on the answer rows). Per layer and head, the sink-free
    attention mass of the weighted queries outside the answer rows to each unit
    [U, layers * heads]; and per layer, the rollout weight on each unit's own tokens
    [U, layers]."""
    weight = torch.zeros(maps[0].shape[-1])
    weight[rows] = 1.0
    answer = weight > 0
    indirect: list[torch.Tensor] = []
    mass: list[torch.Tensor] = []
    for layer in reversed(maps):  # [H, L, L], top layer first
        sink_free = without_sinks(layer.float())
        queries = torch.where(answer, torch.zeros_like(weight), weight)
        indirect.append(per_unit(torch.einsum("q,hqk->hk", queries, sink_free)).T)  # [U, H]
        mass.append(per_unit(weight))  # [U]
        weight = 0.5 * weight + 0.5 * (weight @ sink_free.mean(0))
    return torch.cat(indirect[::-1], -1), torch.stack(mass[::-1], -1)


def _llama_parts(model: torch.nn.Module) -> tuple[Any, torch.Tensor]:
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "norm") or not hasattr(model, "lm_head"):
        raise TypeError(f"{type(model).__name__}: this bench reads Llama-style modules "
                        "(model.norm, lm_head, self_attn.v_proj/o_proj)")
    return inner.norm, model.lm_head.weight.detach().float()


@torch.inference_mode()
def pass_outputs(lm: CausalLM, item: TrainingCase, seed: int) -> tuple[list[str], PassOutputs]:
    case = item.case if item.case.answer is not None else lm.answer(item.case)
    ctx = AuditContext(case, lm, AuditConfig(granularity=item.granularity, seed=seed), Budget())
    model = lm.model
    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    layers = decoder_layers(model)
    final_norm, unembed = _llama_parts(model)
    values: list[torch.Tensor] = [torch.empty(0)] * len(layers)
    final: list[torch.Tensor] = []

    def keep_values(i: int) -> Callable[..., None]:
        def hook(module: Any, inputs: Any, output: torch.Tensor) -> None:
            values[i] = output[0].float()
        return hook

    hooks = [(layer.self_attn.v_proj, keep_values(i)) for i, layer in enumerate(layers)]
    hooks.append((final_norm, lambda m, inputs, out: final.append(inputs[0][0].float())))
    full = ctx.full
    # these recipes read every weight (rollout per head): the eager pass's full maps
    with forward_hooks(hooks), lm.eager_attention():
        maps, logprobs = attention_maps(model, full.input_ids, len(full.target_ids))
    assert logprobs is not None
    start, end = full.target_token_span
    rows = torch.tensor(full.target_predicting_positions)
    targets = torch.tensor(full.input_ids)[start:end]
    residual = final[0][rows]
    rms = residual.pow(2).mean(-1, keepdim=True).add(config.rms_norm_eps).sqrt()
    centred = unembed - unembed.mean(0, keepdim=True)
    readout = centred[targets] * final_norm.weight.float() / rms  # [A, hidden]
    spans = [full.unit_token_spans.get(uid, (0, 0)) for uid in ctx.unit_ids]

    def per_unit(matrix: torch.Tensor) -> torch.Tensor:  # [..., L] -> [..., U]
        return torch.stack([matrix[..., a:b].sum(-1) for a, b in spans], dim=-1)

    norm_cols, logit_cols = [], []
    for index, layer in enumerate(maps):
        picked = layer[:, rows, :].float()  # [H, A, L]
        out_weight = layers[index].self_attn.o_proj.weight.float()
        v = values[index].view(-1, kv_heads, head_dim)
        norm_heads, logit_heads = [], []
        for h in range(heads):
            outputs = v[:, h // (heads // kv_heads)] @ out_weight[:, h * head_dim:(h + 1)
                                                                 * head_dim].T  # [L, hidden]
            scaled = without_sinks(picked[h] * outputs.norm(dim=-1))
            norm_heads.append(per_unit(scaled).sum(0))
            contribution = picked[h] * (readout @ outputs.T)
            contribution[:, :SINK_TOKENS] = 0
            logit_heads.append(per_unit(contribution).sum(0))
        norm_cols.append(torch.stack(norm_heads, -1))
        logit_cols.append(torch.stack(logit_heads, -1))
    indirect, mass = _rollout_features(maps, rows, per_unit)
    return list(ctx.unit_ids), PassOutputs(
        row_features(torch.stack([m[:, rows] for m in maps]), full,
                     ctx.unit_ids).astype(np.float64),
        torch.cat(norm_cols, -1).numpy().astype(np.float64),
        torch.cat(logit_cols, -1).numpy().astype(np.float64),
        logprobs.numpy().astype(np.float64),
        indirect.numpy().astype(np.float64), mass.numpy().astype(np.float64))


def _rows_weighted(weight: Callable[[np.ndarray], np.ndarray]
                   ) -> Callable[[PassOutputs], np.ndarray]:
    return lambda p: np.einsum("a,auf->uf", weight(p.logprobs), p.rows)


FEATURE_SETS: dict[str, Callable[[PassOutputs], np.ndarray]] = {
    "attention (shipped)": lambda p: p.rows.sum(0),
    "attention, mean over answer rows": lambda p: p.rows.mean(0),
    "attention, rows weighted by probability": _rows_weighted(np.exp),
    "attention, rows weighted by 1 - probability": _rows_weighted(lambda lp: 1 - np.exp(lp)),
    "attention, rows weighted by surprisal": _rows_weighted(lambda lp: np.minimum(-lp, 10.0)),
    "value-norm attention": lambda p: p.value_norm,
    "direct logit contribution": lambda p: p.direct_logit,
    "attention + direct logit contribution": lambda p: np.hstack([p.rows.sum(0),
                                                                  p.direct_logit]),
    "attention + rollout through other tokens": lambda p: np.hstack([p.rows.sum(0),
                                                                     p.rollout_indirect]),
    "attention + rollout weight per layer": lambda p: np.hstack([p.rows.sum(0),
                                                                 p.rollout_mass]),
}

Scorer = Callable[[CaseOutcomes], np.ndarray]


def _ridge_scorer(train: Sequence[CaseOutcomes], seed: int) -> tuple[Scorer, float | None]:
    alpha, _cv = choose_alpha(train, seed)
    weights = ridge(train, alpha)
    return (lambda d: d.features @ weights), alpha


def _per_granularity(train: Sequence[CaseOutcomes], seed: int) -> tuple[Scorer, float | None]:
    fitted = {g: _ridge_scorer([d for d in train if d.granularity == g], seed)[0]
              for g in sorted({d.granularity for d in train})}
    return (lambda d: fitted[d.granularity](d)), None


def _sharpened(train: Sequence[CaseOutcomes], seed: int) -> tuple[Scorer, float | None]:
    scorer, alpha = _ridge_scorer(train, seed)

    def score(d: CaseOutcomes) -> np.ndarray:
        plain = scorer(d)
        return np.sign(plain) * np.abs(plain) ** 2
    return score, alpha


def _network(train: Sequence[CaseOutcomes], seed: int, hidden: int = 32, epochs: int = 300
             ) -> tuple[Scorer, float | None]:
    """Unit score = a two-layer network of the standardised features; loss 1 - per-case
    Pearson correlation of the predicted and actual mask outcomes (full batch, AdamW)."""
    stacked = np.vstack([d.features for d in train])
    mean, std = stacked.mean(0), stacked.std(0) + 1e-9
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(stacked.shape[1], hidden), torch.nn.GELU(),
                              torch.nn.Linear(hidden, 1))
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    batches = [(torch.tensor((d.features - mean) / std, dtype=torch.float32),
                torch.tensor(d.masks, dtype=torch.float32),
                torch.tensor(d.targets, dtype=torch.float32)) for d in train]
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = torch.zeros(())
        for x, masks, y in batches:
            predicted = masks @ net(x).squeeze(-1)
            pc, yc = predicted - predicted.mean(), y - y.mean()
            loss = loss + 1 - (pc * yc).sum() / (pc.norm() * yc.norm() + 1e-8)
        (loss / len(batches)).backward()
        optimiser.step()

    def score(d: CaseOutcomes) -> np.ndarray:
        with torch.no_grad():
            x = torch.tensor((d.features - mean) / std, dtype=torch.float32)
            return net(x).squeeze(-1).numpy().astype(np.float64)
    return score, None


MODELS: dict[str, Callable[[Sequence[CaseOutcomes], int], tuple[Scorer, float | None]]] = {
    "separate weights for sentence and source units": _per_granularity,
    "ridge scores squared (sign kept)": _sharpened,
    "two-layer network, per-case Pearson loss": _network,
}


def _summary(score: Scorer, val: Sequence[CaseOutcomes], held: Sequence[CaseOutcomes],
             test_from: int) -> dict[str, Any]:
    held_out_lds, precision = held_out_quality(held, score, test_from)
    return {"validation_lds": _mean([_lds(d.masks, d.targets, score(d)) for d in val]),
            "held_out_lds": held_out_lds, "precision_at_1_single_planted": precision}


def run(lm: CausalLM, train_cases: int, train_cache: Path, held_cases: int, held_cache: Path,
        held_masks: int, test_from: int) -> dict[str, Any]:
    items = training_cases(train_cases, 0)
    fit_on, val_items = split(items, 0.25, 0)
    fit_ids = {c.case.id for c in fit_on}
    sets: list[tuple[str, TrainingCase, CaseOutcomes, PassOutputs]] = []
    for tag, cases, masks, seed, cache in (
            ("train", items, 32, 0, train_cache),
            ("held", training_cases(held_cases, HELD_OUT_SEED, real_split="held_out"),
             held_masks, HELD_OUT_SEED, held_cache)):
        for n, item in enumerate(cases):
            outcomes = case_outcomes(item, lm, masks=masks, keep_prob=0.5, seed=seed,
                                     cache_dir=cache)
            unit_ids, outputs = pass_outputs(lm, item, seed)
            if unit_ids != outcomes.unit_ids or not np.allclose(
                    outputs.rows.sum(0), outcomes.features, atol=1e-3):
                raise RuntimeError(f"{item.case.id}: this pass's attention features differ "
                                   "from the cached outcomes'")
            sets.append((tag, item, outcomes, outputs))
            print(f"{tag} {n + 1}/{len(cases)} {item.case.id}", flush=True)

    def with_features(make: Callable[[PassOutputs], np.ndarray]
                      ) -> tuple[list[CaseOutcomes], list[CaseOutcomes], list[CaseOutcomes]]:
        data = [(tag, item, dataclasses.replace(o, features=make(p)))
                for tag, item, o, p in sets]
        return ([d for tag, item, d in data if tag == "train" and item.case.id in fit_ids],
                [d for tag, item, d in data if tag == "train" and item.case.id not in fit_ids],
                [d for tag, _item, d in data if tag == "held"])

    rows: dict[str, Any] = {}
    for name, make in FEATURE_SETS.items():
        train, val, held = with_features(make)
        scorer, alpha = _ridge_scorer(train, 0)
        rows[name] = {"alpha": alpha, **_summary(scorer, val, held, test_from)}
        print(name, rows[name]["validation_lds"], rows[name]["held_out_lds"]["all"], flush=True)
    train, val, held = with_features(FEATURE_SETS["attention (shipped)"])
    for name, fit in MODELS.items():
        scorer, alpha = fit(train, 0)
        rows[name] = {"alpha": alpha, **_summary(scorer, val, held, test_from)}
        print(name, rows[name]["validation_lds"], rows[name]["held_out_lds"]["all"], flush=True)
    return {"training_cases": len(train), "validation_cases": len(val),
            "held_out_cases": len(held), "recipes": rows}


def markdown(data: dict[str, Any]) -> str:
    recipes = data["recipes"]
    groups = sorted({g for r in recipes.values() for g in r["held_out_lds"]},
                    key=lambda g: (g != "all", g))
    lines = ["# Learned attributor: other inputs and models from the same attention pass", "",
             f"commit `{data['commit']}`, {data['machine'].get('cpu')}, load "
             f"{data['loadavg_start']} -> {data['loadavg_end']}", "",
             f"Fit on {data['training_cases']} training cases (ridge, penalty by grouped "
             f"cross-validation), validation LDS on {data['validation_cases']}, held-out LDS "
             f"on the {data['held_out_cases']} cases of `bench.attributor --steps quality` "
             "(16 test masks each). The shipped recipe is the first row.", "",
             "| recipe | penalty | validation LDS | precision@1 single | "
             + " | ".join(f"held-out LDS {g}" for g in groups) + " |",
             "|---|---|---|---|" + "---|" * len(groups)]
    for name, r in recipes.items():
        lines.append(f"| {name} | {fmt(r['alpha'])} | {fmt(r['validation_lds'], 3)} | "
                     f"{fmt(r['precision_at_1_single_planted'])} | "
                     + " | ".join(fmt(r["held_out_lds"].get(g), 3) for g in groups) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-cases", type=int, default=110)
    parser.add_argument("--train-cache-dir", default=str(relyscope_home() / "attributor-cache"))
    parser.add_argument("--held-cases", type=int, default=50)
    parser.add_argument("--held-cache-dir", default=str(Path(tempfile.gettempdir())
                                                         / "relyscope-attributor-bench"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    start = machine.load()
    lm = CausalLM.load()
    data = run(lm, args.train_cases, Path(args.train_cache_dir), args.held_cases,
               Path(args.held_cache_dir), held_masks=80, test_from=64)
    data.update({"commit": commit, "machine": machine.machine_info(), "loadavg_start": start,
                 "loadavg_end": machine.load()})
    write_json(RESULTS / "attributor-features.json", data)
    (RESULTS / "attributor-features.md").write_text(markdown(data), encoding="utf-8")
    print(markdown(data))


if __name__ == "__main__":
    main()
