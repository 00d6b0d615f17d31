"""Scoring chunks sized to the deadline: under a deadline (or a cancel check) each scoring
call runs at most what the time left affords by the measured cost per token (a third of it;
about a second when the audit can be cancelled), its first call short so the cost it is sized
by is measured now, not before the load changed. Chunking never changes a score."""

from __future__ import annotations

import time

import pytest
from service_support import five_source_case

from relyscope.audits import run_audit
from relyscope.audits.base import Budget
from relyscope.config import AuditConfig
from relyscope.models import CausalLM
from relyscope.models.tree import TokenTrie, TrieEvaluator


def test_a_call_is_capped_at_a_third_of_the_time_left_by_the_measured_cost():
    budget = Budget(deadline=time.monotonic() + 3.0)
    tokens = budget.call_tokens(0.01)  # 10 ms a token: a third of ~3 s is ~100 tokens
    assert tokens is not None and 90 <= tokens <= 100
    assert budget.call_tokens(None) is None  # nothing measured: nothing to size by
    assert Budget().call_tokens(0.01) is None  # no deadline, no cancel check: no cap
    cancellable = Budget(cancelled=lambda: False)
    assert cancellable.call_tokens(0.001) == 1000  # about a second of model time
    assert cancellable.call_tokens(1.0) == 64  # never below the shortest timed call
    late = Budget(deadline=time.monotonic() - 1.0)
    assert late.call_tokens(0.01) == 64  # the stop check, not the size, refuses it


def test_chunks_resized_before_every_call_score_exactly_as_fixed_chunks(tiny_lm):
    prompt = list(range(100, 500))
    sequences = [prompt + [7, 8, 9], prompt[:250] + [11, 12, 13], [5] * 150 + [21, 22],
                 prompt[:90] + [6] * 200 + [31, 32]]
    trie = TokenTrie.build(sequences)
    targets = [3, 3, 2, 2]
    fixed = TrieEvaluator(tiny_lm.model, 512)
    want = fixed.target_logprobs(trie, targets)

    caps = iter([300, 70, 129, 64, 200, 90, 1000] * 10)
    asked: list[float | None] = []

    def call_tokens(seconds_per_token: float | None) -> int:
        asked.append(seconds_per_token)
        return next(caps)

    resized = TrieEvaluator(tiny_lm.model, 512)
    resized.seconds_per_token = 1e-4
    resized.call_tokens = call_tokens
    got = resized.target_logprobs(trie, targets)
    assert resized.model_calls == len(asked) > fixed.model_calls
    assert asked[0] == 1e-4 and all(a is not None and a != 1e-4 for a in asked[1:])
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-5)


@pytest.mark.real_model
def test_a_deadline_shorter_than_a_full_chunk_still_returns_partial_in_time_when_load_rises(
        real_lm):
    """The cost per token measured early in an audit turns 20x too low when the first method
    starts (as when a shared machine's load rises): a deadline that leaves less than one
    full-size (512-token) chunk of model time for the remaining work is still kept, because
    the next scoring call starts short, measures the cost now and sizes its chunks by it.
    With fixed 512-token chunks, the first chunk alone overran this deadline."""
    config = AuditConfig(methods=("attention", "loo", "ablation"))

    def fresh() -> CausalLM:  # the real weights, an empty score cache
        return CausalLM(real_lm.model, real_lm.tokenizer, model_id="chunks",
                        revision=str(time.monotonic()))

    for n in range(2):  # the second run, warm
        reference_lm, marks = fresh(), []
        started = time.monotonic()
        run_audit(five_source_case(f"chunks-ref{n}", f"Who set up the Zelk guild ({n})?"),
                  reference_lm, AuditConfig(methods=("attention",)),
                  deadline=started + 600,  # the same steps: calibrated, chunked
                  progress=lambda event, marks=marks: marks.append(
                      (event.get("event"), time.monotonic())))
        # the full answer, the joint removal and the attention pass
        first_steps = next(t for e, t in marks if e == "method_finished") - started
    assert reference_lm.seconds_per_token is not None
    # the same first steps, then about 300 tokens of model time: less than one 512-token
    # chunk. The slack must hold the attention pass's swings (0.26-0.48 s seen here) and the
    # one short call that runs at the risen cost before it is measured (0.15-0.2 s); 200
    # tokens (about 0.4 s) once overran the deadline by 0.01 s in a CI run
    deadline_s = first_steps + 300 * reference_lm.seconds_per_token

    lm = fresh()

    def load_rises(event: dict) -> None:
        if event.get("event") == "method_started" and event.get("method") == "attention":
            assert lm.scorer.seconds_per_token is not None
            lm.scorer.seconds_per_token /= 20

    started = time.monotonic()
    report = run_audit(five_source_case("chunks"), lm, config, progress=load_rises,
                       deadline=started + deadline_s)
    took = time.monotonic() - started
    assert took <= deadline_s, (took, deadline_s, report.cost)
    assert report.partial and report.settings["cut"]
    assert report.answer_logprob < 0
