"""The learned attributor's plumbing on the tiny random model: the fast preset in the config,
the CLI and the proto; the error without weights; training, its provenance and resuming."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from relyscope.audits import run_audit
from relyscope.audits.attributor_cases import training_cases
from relyscope.audits.attributor_training import case_outcomes, mean_lds, ridge, train
from relyscope.audits.attributor_weights import build, load, save, weights_for, weights_hash
from relyscope.audits.registry import validate_config
from relyscope.case import CaseError
from relyscope.cli import build_parser
from relyscope.cli.options import audit_config_from
from relyscope.config import FAST_METHODS, AuditConfig
from relyscope.protocol.convert import config_from_proto, config_to_proto
from tests.conftest import zelk_case


def answered(n: int, seed: int) -> list:
    """Training cases with a fixed answer (the tiny random model generates nothing useful)."""
    return [dataclasses.replace(c, case=c.case.with_answer("It is Nora Tamsin."))
            for c in training_cases(n, seed)]


def test_fast_preset_names_its_methods_and_refuses_others() -> None:
    assert AuditConfig.from_dict({"preset": "fast"}).methods == FAST_METHODS
    assert AuditConfig.from_dict({}).preset == "full"
    with pytest.raises(CaseError) as err:
        AuditConfig.from_dict({"preset": "fast", "methods": ["loo"]})
    assert err.value.field == "preset"
    with pytest.raises(CaseError) as err:
        AuditConfig.from_dict({"preset": "quick"})
    assert err.value.field == "preset"


def test_fast_flag_and_proto_round_trip() -> None:
    args = build_parser().parse_args(["audit", "case.json", "--fast", "--methods", "loo"])
    config = audit_config_from(args)
    assert config.preset == "fast" and config.methods == FAST_METHODS
    back = config_from_proto(config_to_proto(config))
    assert back.preset == "fast" and back.methods == FAST_METHODS
    assert config_from_proto(config_to_proto(AuditConfig())).preset == "full"


def test_verify_flag_reaches_the_learned_method_and_only_it() -> None:
    parser = build_parser()
    fast = audit_config_from(parser.parse_args(["audit", "case.json", "--fast", "--verify", "16"]))
    assert fast.preset == "fast" and fast.method_settings["learned"]["verify"] == 16
    named = audit_config_from(parser.parse_args(
        ["audit", "case.json", "--methods", "attention,learned", "--verify", "4"]))
    assert named.method_settings["learned"]["verify"] == 4
    assert "learned" not in audit_config_from(
        parser.parse_args(["audit", "case.json", "--fast"])).method_settings
    with pytest.raises(CaseError) as err:
        audit_config_from(parser.parse_args(["audit", "case.json", "--verify", "16"]))
    assert err.value.field == "verify"
    negative = audit_config_from(parser.parse_args(["audit", "case.json", "--fast",
                                                    "--verify", "-1"]))
    with pytest.raises(CaseError) as err:  # checked where every config is, before the audit
        validate_config(negative)
    assert err.value.field == "method_settings.learned.verify"


def test_no_weights_is_an_error_naming_the_training_command(tiny_lm, tmp_path: Path) -> None:
    missing = str(tmp_path / "none.json")
    with pytest.raises(CaseError) as err:
        weights_for("tiny", 2, 4, missing)
    assert err.value.field == "method_settings.learned.weights"
    assert "relyscope train-attributor --model tiny" in err.value.message
    config = AuditConfig.from_dict({"preset": "fast",
                                    "method_settings": {"learned": {"weights": missing}}})
    report = run_audit(zelk_case(), tiny_lm, config)
    assert "relyscope train-attributor" in report.errors["learned"]


def test_weights_of_another_shape_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    save(build("other", 3, 4, np.zeros(12), {}), path)
    with pytest.raises(CaseError, match="3x4 heads"):
        weights_for("tiny", 2, 4, str(path))


def test_training_is_seeded_resumable_and_saves_provenance(tiny_lm, tmp_path: Path) -> None:
    assert [c.case for c in training_cases(8, seed=3)] == [
        c.case for c in training_cases(8, seed=3)]
    cases = answered(8, seed=3)
    assert {c.kind for c in cases} >= {"single", "real", "tools"}
    assert {c.granularity for c in cases} == {"source", "sentence"}
    cache = tmp_path / "cache"
    first = train(tiny_lm, cases, masks=8, keep_prob=0.5, seed=0, val_fraction=0.25,
                  cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 8
    assert len(first.train) == 6 and len(first.val) == 2
    before = tiny_lm.cost.forward_passes
    again = train(tiny_lm, cases, masks=8, keep_prob=0.5, seed=0, val_fraction=0.25,
                  cache_dir=cache)
    assert tiny_lm.cost.forward_passes == before  # every outcome came from the cache
    np.testing.assert_allclose(again.weights, first.weights)
    heads = tiny_lm.num_layers * tiny_lm.num_heads
    assert first.weights.shape == (heads,)
    assert first.train[0].features.shape[1] == heads
    # the fit is what it says: on its own training cases it beats no signal at all
    assert mean_lds(first.train, ridge(first.train, 0.01)) > 0
    path = tmp_path / "w.json"
    save(build(tiny_lm.info.id, tiny_lm.num_layers, tiny_lm.num_heads, first.weights,
               {"validation_lds": first.validation_lds, "cases": 8}), path)
    saved = load(path)
    assert saved.weights_sha256 == weights_hash(saved.weights)
    assert saved.provenance["cases"] == 8 and "date" in saved.provenance
    assert json.loads(path.read_text())["model_id"] == tiny_lm.info.id


def test_cache_key_follows_the_settings(tiny_lm, tmp_path: Path) -> None:
    item = answered(1, seed=5)[0]
    a = case_outcomes(item, tiny_lm, masks=4, keep_prob=0.5, seed=0, cache_dir=tmp_path)
    b = case_outcomes(item, tiny_lm, masks=6, keep_prob=0.5, seed=0, cache_dir=tmp_path)
    assert len(a.masks) == 4 and len(b.masks) == 6
    assert len(list(tmp_path.glob("*.npz"))) == 2
