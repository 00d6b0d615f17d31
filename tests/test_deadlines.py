"""The deadline contract: a deadline is checked before every model call, so an audit comes
back partial (what was scored is kept) before it; one too short to score anything is refused
with RESOURCE_EXHAUSTED naming `deadline`, never left to expire."""

from __future__ import annotations

import time

import grpc
import pytest
from service_support import five_source_case, running_server

from relyscope.audits import run_audit
from relyscope.audits.registry import method_names
from relyscope.client import Client, ServiceCallError
from relyscope.config import AuditConfig
from relyscope.errors import BudgetTooSmall, ScoringStopped
from relyscope.models import CausalLM
from relyscope.models.tree import TokenTrie, TrieEvaluator

ALL_METHODS = AuditConfig(methods=method_names())


def tool_case(case_id: str = "deadline-all"):
    """Four passages, one tool call: the issue's all-methods case."""
    case = five_source_case(case_id, tool_calls=[
        {"id": "call_1", "name": "weather", "arguments": '{"city": "Mirel"}',
         "output": "18 C and dry in Mirel"}])
    return case.model_copy(update={"sources": case.sources[:4]})


# -- the model layer: a stop between model calls keeps what was scored ------------------------

def test_the_trie_evaluator_stops_between_chunks_and_keeps_the_finished_sequences(tiny_lm):
    prompt = list(range(100, 420))
    sequences = [prompt + [7, 8, 9, 10], prompt[:180] + [11, 12, 13, 14],
                 [5] * 120 + [21, 22, 23], [6] * 120 + [31, 32, 33]]
    trie = TokenTrie.build(sequences)
    targets = [3, 3, 2, 2]
    full = TrieEvaluator(tiny_lm.model, 64).target_logprobs(trie, targets)

    evaluator = TrieEvaluator(tiny_lm.model, 64)
    calls: list[float] = []

    def stop(expected: float) -> str | None:
        calls.append(expected)
        return "enough" if len(calls) > 4 else None

    evaluator.stop = stop
    with pytest.raises(ScoringStopped) as stopped:
        evaluator.target_logprobs(trie, targets)
    assert stopped.value.reason == "enough"
    assert evaluator.model_calls == 4  # it stopped before the fifth call, not after
    assert calls[0] == 0.0 and all(c > 0 for c in calls[1:])  # later calls are sized
    done = stopped.value.done
    assert done and len(done) < len(sequences)
    for index, row in done.items():  # what was kept is exactly what a full run gives
        assert row == pytest.approx(full[index], abs=1e-5)


@pytest.mark.parametrize("layout", ["tree", "batch"])
def test_a_stopped_scoring_call_caches_what_it_scored(tiny_tokenizer, layout):
    from transformers import LlamaConfig, LlamaForCausalLM

    from relyscope.models.scoring import ScoreItem, ScoringOptions

    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    lm = CausalLM(LlamaForCausalLM(config), tiny_tokenizer, model_id="tiny", revision="0",
                  options=ScoringOptions(layout=layout, tree_chunk_tokens=8,
                                         max_batch_size=1))
    items = [ScoreItem(tuple([40 + i] * 12 + [1, 2, 3]), 3) for i in range(6)]
    calls = 0

    def stop(expected: float) -> str | None:
        nonlocal calls
        calls += 1
        return "deadline" if calls > 3 else None

    with lm.stopping(stop), pytest.raises(ScoringStopped) as stopped:
        lm.score_tokens(items)
    kept = stopped.value.done
    assert 0 < len(kept) < len(items)
    assert lm.scorer.stop is None  # the stop check is only for the block
    misses = lm.cost.cache_misses
    again = lm.score_tokens([items[i] for i in kept])
    assert lm.cost.cache_misses == misses  # served from the cache: nothing ran twice
    assert [s.token_logprobs for s in again] == [kept[i].token_logprobs for i in kept]


# -- the library: max_seconds -------------------------------------------------------------------

@pytest.mark.real_model
def test_max_seconds_returns_a_partial_all_methods_report_within_it(real_lm):
    started = time.monotonic()
    report = run_audit(tool_case("max-seconds"), real_lm,
                       ALL_METHODS.model_copy(update={"max_seconds": 6.0}))
    took = time.monotonic() - started
    assert report.partial
    assert took < 6.0, report.cost
    assert report.settings["cut"]  # what was cut is named
    assert report.answer_logprob < 0  # the full answer was scored


@pytest.mark.real_model
def test_a_deadline_too_short_for_the_full_answer_is_refused_at_once(real_lm):
    real_lm.calibrate()
    started = time.monotonic()
    with pytest.raises(BudgetTooSmall) as err:
        run_audit(tool_case("too-short"), real_lm, ALL_METHODS,
                  deadline=time.monotonic() + 0.001)
    assert err.value.timed_out
    assert time.monotonic() - started < 5  # no model call was started to find out


# -- the service ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(real_lm: CausalLM):
    with running_server(real_lm) as server, \
            Client(f"127.0.0.1:{server.port}", timeout=300) as c:
        yield c


@pytest.mark.real_model
def test_an_all_methods_audit_with_a_5s_deadline_returns_ok_partial_within_it(client):
    started = time.monotonic()
    report = client.audit(tool_case(), ALL_METHODS, timeout=5.0)
    took = time.monotonic() - started
    assert took < 5.0
    assert report.partial
    assert report.settings["cut"]
    assert any("cut" in w for w in report.warnings)


@pytest.mark.real_model
def test_a_deadline_shorter_than_the_margin_gets_resource_exhausted_naming_deadline(client):
    started = time.monotonic()
    with pytest.raises(ServiceCallError) as err:
        client.audit(tool_case("short"), ALL_METHODS, timeout=0.8)
    took = time.monotonic() - started
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
    assert err.value.field == "deadline"
    assert "deadline too short" in str(err.value)
    assert took < 0.8


@pytest.mark.real_model
def test_a_stream_with_a_deadline_ends_in_a_partial_report(client):
    started = time.monotonic()
    events = list(client.stream_audit(tool_case("stream"), ALL_METHODS, timeout=6.0))
    took = time.monotonic() - started
    reports = [e for e in events if e.get("event") == "report"]
    assert took < 6.0
    assert len(reports) == 1 and reports[0]["report"].partial


def test_only_a_deadline_already_spent_on_the_margin_is_refused_at_admission():
    from relyscope.service.api.servicers import refuse_short_deadline
    from relyscope.service.errors import ServiceError, rich_status

    with pytest.raises(ServiceError) as err:
        refuse_short_deadline(time.monotonic() - 0.01)
    assert err.value.error.field == "deadline"
    assert rich_status(err.value.error).code == grpc.StatusCode.RESOURCE_EXHAUSTED
    refuse_short_deadline(None)
    refuse_short_deadline(time.monotonic() + 10)
