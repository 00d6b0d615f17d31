"""The learned-attributor benchmark's model-free pieces: the verify=K replay, the grouped
verification-mask design, the non-gold agreement of the ceiling step and the speed step's
history (bench/attributor.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.attributor import (
    _filler_agreement,
    _grouped_masks,
    _verify_subsets,
    earlier_speed_runs,
    markdown,
)
from bench.attributor_features import FEATURE_SETS, PassOutputs, _rollout_features
from relyscope.audits.attributor_training import CaseOutcomes


def test_verify_replay_is_exact_when_the_estimate_predicts_every_mask() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((16, 6)) < 0.5
    scores = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.25])
    out = _verify_subsets(masks, masks @ scores, scores)
    assert set(out) == {"4", "8"}
    for k in ("4", "8"):
        assert out[k]["mean_abs_error"] < 1e-9
        assert out[k]["below_min_lds"] == 0.0


def test_verify_replay_flags_an_estimate_ranked_backwards() -> None:
    rng = np.random.default_rng(4)
    masks = rng.random((16, 6)) < 0.5
    scores = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.25])
    out = _verify_subsets(masks, masks @ scores, -scores)  # every mask ranked the wrong way
    assert out["8"]["below_min_lds"] == 1.0


def test_grouped_masks_share_their_first_units_within_a_group() -> None:
    masks = _grouped_masks(8, 4, 0.75, 24, np.random.default_rng(0))
    assert masks.shape == (8, 24) and masks.dtype == bool
    cut = 18
    for group in (masks[:4], masks[4:]):
        assert (group[:, :cut] == group[0, :cut]).all()
    assert not (masks[:4, cut:] == masks[0, cut:]).all()  # the rest varies


def _case(units: int, gold: list[str]) -> CaseOutcomes:
    ids = [f"s{i}" for i in range(units)]
    return CaseOutcomes("c", "single", "source", ids, gold, np.zeros((units, 2)),
                        np.zeros((1, units), bool), np.zeros(1), 0, 0.0)


def test_filler_agreement_ranks_only_the_units_outside_the_gold() -> None:
    case = _case(6, ["s0"])
    surrogate = np.array([40.0, 0.5, 0.4, 0.3, 0.2, 0.1])
    # the gold unit's score is ignored: a learned estimate that misses it but orders the
    # fillers as the surrogate does agrees fully, one that orders them backwards disagrees
    assert _filler_agreement(case, surrogate, np.array([-9.0, 5, 4, 3, 2, 1])) \
        == pytest.approx(1.0)
    assert _filler_agreement(case, surrogate, np.array([40.0, 1, 2, 3, 4, 5])) \
        == pytest.approx(-1.0)


def test_filler_agreement_needs_four_units_outside_the_gold() -> None:
    assert _filler_agreement(_case(4, ["s0"]), np.arange(4.0), np.arange(4.0)) is None
    assert _filler_agreement(_case(5, []), np.ones(5), np.arange(5.0)) is None  # constant


def test_answer_rows_weighted_by_their_token_probability() -> None:
    rows = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)  # [answer rows, units, heads]
    logprobs = np.log(np.array([0.25, 1.0]))
    outputs = PassOutputs(rows, np.zeros((3, 4)), np.zeros((3, 4)), logprobs,
                          np.zeros((3, 4)), np.zeros((3, 2)))
    weighted = FEATURE_SETS["attention, rows weighted by probability"](outputs)
    np.testing.assert_allclose(weighted, 0.25 * rows[0] + rows[1])
    assert FEATURE_SETS["attention, rows weighted by 1 - probability"](outputs) \
        == pytest.approx(0.75 * rows[0])
    np.testing.assert_allclose(FEATURE_SETS["attention (shipped)"](outputs), rows.sum(0))


def test_rollout_reaches_a_unit_through_the_token_the_answer_read() -> None:
    """Tokens: 0 sink, 1 the unit, 2 a go-between, 3 the answer row. The top layer's answer
    row reads only token 2; in the layer below, token 2 reads only the unit. Rollout (0.5 A +
    0.5 I) gives token 2 a weight of 0.5 below the top, so the unit gets 0.5 through it there
    and nothing directly; no rollout weight sits on the unit's own token."""
    def layer(reads: dict[int, int]) -> torch.Tensor:
        attention = torch.eye(4)
        for row, key in reads.items():
            attention[row] = torch.nn.functional.one_hot(torch.tensor(key), 4).float()
        return attention.unsqueeze(0)  # one head
    maps = [layer({2: 1}), layer({3: 2})]
    indirect, mass = _rollout_features(maps, torch.tensor([3]),
                                       lambda m: m[..., 1:2].sum(-1, keepdim=True))
    np.testing.assert_allclose(indirect.numpy(), [[0.5, 0.0]])  # [unit, layer 0 | layer 1]
    np.testing.assert_allclose(mass.numpy(), [[0.0, 0.0]])


def _speed_run(commit: str, fast: float, full: float, earlier: list | None = None) -> dict:
    timings = {"one_forward_pass_s": 1.0, "one_scoring_pass_s": 0.9,
               "fast": {"seconds": fast, "forward_passes": 15, "top1": "s1"},
               "fast_again": {"seconds": fast + 0.2, "forward_passes": 15, "top1": "s1"},
               "ablation_64": {"seconds": 4 * fast, "forward_passes": 73, "top1": "s1"},
               "full_default": {"seconds": full, "forward_passes": 234, "top1": "s1"}}
    run = {"units": 24, "tokens": 493, "gold": ["s1"], "timings": timings,
           "speedup_fast": 4.0, "speedup_fast_vs_full_default": full / fast,
           "full_default_methods": ["attention"], "run": {"commit": commit}}
    return run | ({"earlier": earlier} if earlier is not None else {})


def test_each_speed_run_keeps_the_ones_before_it() -> None:
    assert earlier_speed_runs(None) == []
    first = _speed_run("aaa", 4.0, 80.0)
    second = _speed_run("bbb", 8.0, 150.0, earlier=earlier_speed_runs(first))
    history = earlier_speed_runs(second)
    assert [r["run"]["commit"] for r in history] == ["aaa", "bbb"]
    assert history[0]["fast_s"] == [4.0, 4.2] and history[1]["full_default_s"] == 150.0
    third = _speed_run("ccc", 6.0, 120.0, earlier=history)
    text = markdown({"commit": "ccc", "machine": {"cpu": "x", "loadavg_start": [0.1]},
                     "speed": third})
    assert "Earlier run at commit `aaa`" in text and "Earlier run at commit `bbb`" in text
    assert "(20.0x)" in text and "(18.8x)" in text  # each run's own full-default ratio
