"""The learned-attributor benchmark's model-free pieces: the verify=K replay and the grouped
verification-mask design (bench/attributor.py)."""

from __future__ import annotations

import numpy as np

from bench.attributor import _grouped_masks, _verify_subsets


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
