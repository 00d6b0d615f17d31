"""Every verdict on the real model, each on a case built to produce it (issue 17, item 5).

Default thresholds throughout (relied at a 2-nat drop, attended at the uniform share 1/n,
unstable below a Spearman of 0.5). The cases:
- the bundled Zelk case: the planted source is `relied`, the weather tool output is `unused`,
  the audit is `grounded`;
- two long units that repeat the question's entity beside a short fact: the decoys draw the
  attention (`consulted-not-relied`), the fact gets less than the uniform share and carries the
  answer (`relied-not-attended`);
- two sources stating the same fact: `redundant-sources`;
- a capital the model knows, beside fillers: `parametric`; with a paraphrased question the
  fillers' leave-one-out ranking (noise around zero) moves: `unstable`.
"""

from __future__ import annotations

import pytest

from relyscope.audits import run_audit
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.report_model import Report
from tests.conftest import ZELK_SOURCES, zelk_case

pytestmark = pytest.mark.real_model

SYSTEM = "Answer the question in one sentence using the context."
ANSWER = "The Zelk guild was founded by Anna Roth."
FACT = "The Zelk guild was founded by Anna Roth."
FILLERS = [t for _, t in ZELK_SOURCES if "Zelk" not in t] + [
    "Bakers in Kell sell a dark rye bread flavoured with caraway seeds.",
    "The Tarn railway climbs through pine forests on a narrow gauge track."]
DECOYS = [
    "The Zelk guild is famous in the harbour towns. Visitors ask about the Zelk guild, guides "
    "talk about the Zelk guild for hours, and songs about the Zelk guild are sung at every "
    "fair.",
    "Many stories have been written about the Zelk guild. Schoolchildren learn a song about "
    "the Zelk guild, and a painting of the Zelk guild hangs in the gallery by the harbour."]
CONFIG = AuditConfig(methods=("attention", "loo", "ablation", "tools"))


def case(case_id: str, query: str, texts: list[str], answer: str, **extra) -> Case:
    return Case.from_dict({"id": case_id, "system": SYSTEM, "query": query, "answer": answer,
                           "sources": [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)],
                           **extra})


def unit(report: Report, uid: str):
    return next(u for u in report.units if u.id == uid)


@pytest.fixture(scope="module")
def zelk(real_lm) -> Report:
    return run_audit(zelk_case(ANSWER), real_lm, CONFIG)


@pytest.fixture(scope="module")
def decoys(real_lm) -> Report:
    built = case("decoys", "Who founded the Zelk guild?", [DECOYS[0], FACT, DECOYS[1]], ANSWER,
                 metadata={"paraphrase": "Which person established the Zelk guild?"})
    return run_audit(built, real_lm, CONFIG.model_copy(update={"stability": True}))


def test_relied_unused_and_grounded_on_the_planted_case(zelk):
    planted, weather = unit(zelk, "d1"), unit(zelk, "call_1")
    share = 1 / len(zelk.units)
    assert planted.verdict == "relied"
    assert planted.reliance["loo"] > 10 and planted.provenance["attention_share"] > 2 * share
    assert weather.verdict == "unused"
    assert weather.reliance["loo"] < 2 and weather.provenance["attention_share"] < share
    assert "grounded" in zelk.verdicts and "parametric" not in zelk.verdicts
    assert zelk.methods["joint_removal"]["drop"] > 10


def test_a_short_fact_beside_attention_decoys_is_relied_not_attended(decoys):
    fact = unit(decoys, "d1")
    assert fact.verdict == "relied-not-attended"
    assert fact.reliance["loo"] > 10  # the answer depends on it ...
    assert fact.provenance["attention_share"] < 1 / len(decoys.units)  # ... below uniform
    assert fact.provenance["attention_share"] < unit(decoys, "d0").provenance["attention_share"]


def test_an_attention_decoy_is_consulted_not_relied(decoys):
    decoy = unit(decoys, "d0")
    assert decoy.verdict == "consulted-not-relied"
    assert decoy.provenance["attention_share"] > 1 / len(decoys.units)
    assert abs(decoy.reliance["loo"]) < 2 and decoy.reliance["ablation"] < 2
    # a stable audit: the fact stays on top under the paraphrase
    assert "unstable" not in decoys.verdicts
    assert decoys.methods["stability"]["loo_spearman_under_paraphrase"] > 0.5


def test_two_copies_of_the_fact_are_redundant_sources(real_lm):
    built = case("redundant", "Who founded the Zelk guild?",
                 [FILLERS[0], FACT, FILLERS[1], "Anna Roth founded the Zelk guild.", FILLERS[2]],
                 ANSWER)
    report = run_audit(built, real_lm, CONFIG)
    assert "redundant-sources" in report.verdicts and "grounded" in report.verdicts
    singles = [u.reliance["loo"] for u in report.units]
    joint = report.methods["joint_removal"]["drop"]
    assert max(singles) < 2 * 3  # no single removal matters much (relied_drop x ratio)
    assert joint >= 3 * max(singles) and joint > 10  # removing both does


@pytest.fixture(scope="module")
def capital(real_lm) -> Report:
    built = case("capital", "What is the capital of Japan?", FILLERS,
                 "The capital of Japan is Tokyo.",
                 metadata={"paraphrase": "Which city is the capital of Japan?"})
    return run_audit(built, real_lm, CONFIG.model_copy(update={"stability": True}))


def test_a_known_capital_beside_fillers_is_parametric(capital):
    assert "parametric" in capital.verdicts and "grounded" not in capital.verdicts
    assert capital.methods["joint_removal"]["drop"] < 2
    assert capital.answer_logprob / capital.answer_tokens > -1.0
    assert all(u.verdict in ("unused", "consulted-not-relied") for u in capital.units)


def test_a_noise_ranking_moves_under_a_paraphrase_unstable(capital):
    spearman = capital.methods["stability"]["loo_spearman_under_paraphrase"]
    assert spearman < 0.5
    assert "unstable" in capital.verdicts
