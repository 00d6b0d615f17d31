"""The quality benchmark's pieces that need no model: a planted case is a function of
(seed, kind, index), and shard runs pool into one result (bench.quality.merge)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cases import CaseFactory
from bench.quality import merge
from bench.quality_md import markdown


def test_a_case_does_not_depend_on_what_was_drawn_before() -> None:
    alone = CaseFactory(seed=0, units=4).make("partial", 7)
    busy = CaseFactory(seed=0, units=4)
    for kind in ("joint", "decoy", "redundant"):
        busy.make(kind, 3)
    assert busy.make("partial", 7) == alone
    assert CaseFactory(seed=1, units=4).make("partial", 7) != alone


def row(case_id: str, kind: str, top: str) -> dict[str, Any]:
    scores = {"s0": 1.0 if top == "s0" else 0.0, "s1": 1.0 if top == "s1" else 0.0}
    entry = {"top": top, "scores": scores, "topk_drop": {"1": 2.0}, "hit": top == "s0",
             "gold_in_top": float(top == "s0"), "distractor_first": None,
             "distractor_above_gold": None, "agrees_loo": None, "agrees_ablation": None}
    return {"case_id": case_id, "kind": kind, "gold": ["s0"], "distractor": None,
            "answer": "a", "verdicts": ["grounded"], "unit_verdicts": {"s0": "relied"},
            "joint_drop": 3.0, "lds": 0.5, "cost": 10, "seconds": 1.0,
            "method_cost": {"loo": {"forward_passes": 3, "seconds": 0.1}},
            "methods": {"loo": entry}}


def shard(commit: str, rows: list[dict[str, Any]], dropped: list[tuple[str, str]]
          ) -> dict[str, Any]:
    certificates = [{"case_id": r["case_id"], "kind": r["kind"], "certified": True,
                     "why": "ok"} for r in rows]
    certificates += [{"case_id": c, "kind": k, "certified": False, "why": "lost"}
                     for c, k in dropped]
    return {"benchmark": "quality", "mode": "full", "commit": commit,
            "uncommitted_changes": [], "seed": 0, "units_per_case": 4, "config": {"m": 1},
            "targets": {"single": 2}, "machine": {"loadavg_start": [1.0], "cpu": "x",
                                                   "cores": 2, "torch": "t"},
            "loadavg_end": [1.0], "model": {"id": "m", "dtype": "float32"},
            "complete": False, "stopped_by_time_limit": False, "seconds": 60.0,
            "certification": {"rule": "r", "counts": {}, "certificates": certificates},
            "notes": ["n"], "cases": rows}


def test_shards_pool_their_cases_once_and_recount() -> None:
    first = shard("aaa", [row("single-00", "single", "s0")], [("single-01", "single")])
    second = shard("bbb", [row("single-200", "single", "s1"), row("single-00", "single", "s0")],
                   [])
    merged = merge([first, second], log=lambda message: None)
    assert [r["case_id"] for r in merged["cases"]] == ["single-00", "single-200"]
    counts = merged["certification"]["counts"]["single"]
    assert counts == {"candidates": 3, "certified": 2, "dropped": {"lost": 1}}
    assert merged["complete"] is True  # 2 certified single cases against a target of 2
    assert merged["commit"] == "aaa, bbb"
    loo = merged["summary"]["kinds"]["single"]["methods"]["loo"]["gold_first"]
    assert loo == {"rate": 0.5, "cases": 2}
    assert "pooled from 2 shard runs" in markdown(merged)


def test_completeness_is_judged_on_every_shard_s_targets() -> None:
    whole = shard("aaa", [row("single-00", "single", "s0")], [])
    kinds_only = shard("aaa", [], [])
    kinds_only["targets"] = {"decoy": 1}  # a --kinds shard: decoy has no certified case
    merged = merge([whole, kinds_only], log=lambda message: None)
    assert merged["targets"] == {"single": 2, "decoy": 1}
    assert merged["complete"] is False


def test_shards_of_different_settings_are_refused() -> None:
    other = shard("bbb", [], [])
    other["config"] = {"m": 2}
    with pytest.raises(ValueError, match="shards differ in config"):
        merge([shard("aaa", [], []), other], log=lambda message: None)
