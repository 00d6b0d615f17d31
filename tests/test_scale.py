"""bench/scale's cases, built without the model: the side by side's case has 24+ sentence
units and 1,000+ prompt tokens with its planted sentences as gold units, and no system
message (ContextCite's prompt is one user turn); the hierarchy case has 10 chunks whose gold
ids are the planted sentences at sentence granularity."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydoc_data.topics")

from bench.scale import chunk_case, sentence_case  # noqa: E402
from relyscope.models.render import Renderer  # noqa: E402


def test_side_by_side_case_is_at_scale(tiny_tokenizer: Any) -> None:
    case = sentence_case(0)
    assert case.system is None
    assert len(case.sources) >= 24
    assert len(Renderer(tiny_tokenizer, case).render().prompt_ids) >= 1000
    texts = {s.id: s.text for s in case.sources}
    planted = {p["sentence"] for p in case.metadata["planted"]}
    assert case.metadata["gold"] and {texts[g] for g in case.metadata["gold"]} == planted


def test_hierarchy_case_has_ten_chunks_and_sentence_gold(tiny_tokenizer: Any) -> None:
    case = chunk_case(0)
    assert len(case.sources) == 10
    units = {u.id: u.text for u in case.units("sentence")}
    planted = {p["sentence"] for p in case.metadata["planted"]}
    assert {units[g].strip() for g in case.metadata["gold"]} == planted
    assert all(len([u for u in case.units("sentence") if u.parent == s.id]) <= 4
               for s in case.sources)
