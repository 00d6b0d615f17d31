"""Causal tracing's layer restoration on the real model (issue 17, item 4).

On the bundled Zelk case the answer's fact is planted in d1 only. With the planted source
noised, restoring its clean hidden states at the early layer windows must bring back most of
the log-prob the noise took (the fact is still at the source's own positions there), and much
less at the last window (by then it has been read into the answer's positions). Restoring the
next-ranked unit, a distractor, recovers next to nothing: there was next to nothing to lose.
"""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.config import AuditConfig
from tests.conftest import zelk_case

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def traced(real_lm):
    config = AuditConfig(methods=("tracing",), method_settings={
        "tracing": {"samples": 2, "top_units": 2, "in_distribution": False}})
    return run_audit(zelk_case(), real_lm, config)


def test_layer_profiles_run_on_the_real_model_for_the_top_units(traced, real_lm):
    settings = traced.settings["config"]["method_settings"]["tracing"]
    assert settings["top_units"] == 2
    profiles = traced.methods["tracing"]["layer_profiles"]
    scores = {u.id: u.reliance["tracing"] for u in traced.units}
    ranked = sorted(scores, key=lambda uid: -scores[uid])
    assert list(profiles) == ranked[:2]
    assert ranked[0] == "d1"  # the planted source has the largest total effect
    assert scores["d1"] > 10.0
    windows = [tuple(w["layers"]) for w in profiles["d1"]]
    assert windows[0] == (0, 4) and windows[-1][1] == real_lm.num_layers - 1
    assert len(windows) == -(-real_lm.num_layers // 5)


def test_restoring_the_planted_source_early_recovers_most_of_the_drop(traced):
    effect = next(u.reliance["tracing"] for u in traced.units if u.id == "d1")
    profile = [w["indirect_effect"] for w in traced.methods["tracing"]["layer_profiles"]["d1"]]
    assert profile[0] >= 0.8 * effect  # layers 0-4: most of the drop comes back
    assert profile[1] >= 0.8 * effect
    assert profile[-1] <= 0.3 * effect  # the last window: the fact has left the span
    assert max(profile) <= 1.2 * effect  # a restoration cannot add much beyond the clean run


def test_restoring_a_distractor_recovers_nothing(traced):
    profiles = traced.methods["tracing"]["layer_profiles"]
    (distractor,) = [uid for uid in profiles if uid != "d1"]
    assert distractor != "d1"
    planted = next(u.reliance["tracing"] for u in traced.units if u.id == "d1")
    recovered = [w["indirect_effect"] for w in profiles[distractor]]
    assert max(abs(r) for r in recovered) < 0.05 * planted
    assert max(abs(r) for r in recovered) < 2.0  # nats: below the relied threshold
