"""The on-disk score cache: a second process-like run is served without forward passes."""

from relyscope.models import CausalLM
from relyscope.models.cache import SqliteScoreCache
from tests.conftest import zelk_case


def test_sqlite_cache_serves_a_new_backend_without_forward_passes(tiny_lm, tmp_path):
    rendered = [tiny_lm.renderer(zelk_case()).render()]
    first = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="tiny", revision="r1",
                     cache=SqliteScoreCache(tmp_path / "scores.sqlite"))
    want = first.score(rendered)
    assert first.cost.forward_passes == 1
    second = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="tiny", revision="r1",
                      cache=SqliteScoreCache(tmp_path / "scores.sqlite"))
    got = second.score(rendered)
    assert second.cost.forward_passes == 0 and second.cost.cache_hits == 1
    assert got[0].token_logprobs == want[0].token_logprobs  # bit-exact round trip
    other_revision = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="tiny", revision="r2",
                              cache=SqliteScoreCache(tmp_path / "scores.sqlite"))
    other_revision.score(rendered)
    assert other_revision.cost.forward_passes == 1  # keys name the model revision


def test_redis_cache_is_shared_between_backends(tiny_lm):
    import uuid

    from relyscope.models.cache import RedisScoreCache

    prefix = f"relyscope:test:{uuid.uuid4().hex}:"
    rendered = [tiny_lm.renderer(zelk_case()).render()]
    first = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="tiny", revision="redis",
                     cache=RedisScoreCache("redis://127.0.0.1:6379/0", prefix=prefix))
    want = first.score(rendered)
    second = CausalLM(tiny_lm.model, tiny_lm.tokenizer, model_id="tiny", revision="redis",
                      cache=RedisScoreCache("redis://127.0.0.1:6379/0", prefix=prefix))
    got = second.score(rendered)
    assert second.cost.forward_passes == 0
    assert got[0].token_logprobs == want[0].token_logprobs
    client = second.scorer.cache.client
    keys = client.keys(prefix + "*")
    assert len(keys) == 1 and client.ttl(keys[0]) > 0
    client.delete(*keys)


def test_redis_down_is_a_clear_error():
    import pytest

    from relyscope.models.cache import RedisScoreCache

    with pytest.raises(ConnectionError, match="cannot reach Redis at redis://127.0.0.1:1/0"):
        RedisScoreCache("redis://127.0.0.1:1/0")
