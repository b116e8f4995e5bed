"""Loading checkpointed state: in bulk, exactly what was written, never a silent fresh state."""

import pytest
import redis

from connectors.checkpoint import StateStore
from connectors.keys import Keys
from connectors.metrics import Metrics
from operators.state import ProspectState, encode_state

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="ckpt", shards=2)


def _mgets_and_gets(r: redis.Redis) -> tuple[int, int]:
    stats = r.info("commandstats")
    return (
        int(stats.get("cmdstat_mget", {}).get("calls", 0)),
        int(stats.get("cmdstat_get", {}).get("calls", 0)),
    )


def test_requested_states_load_in_one_round_trip(redis_client: redis.Redis) -> None:
    stored = {p: ProspectState(prospect=p, seq=n + 1) for n, p in enumerate(["a", "b", "c"])}
    for p, state in stored.items():
        redis_client.set(KEYS.state(p), encode_state(state))
    store = StateStore(redis_client, KEYS, Metrics(), chunk=1_000)
    redis_client.config_resetstat()
    for p in ["a", "new", "b", "c"]:
        store.request(p)
    assert store.take("b") == stored["b"]
    assert store.take("new") is None
    assert store.take("a") == stored["a"]
    assert store.take("c") == stored["c"]
    assert _mgets_and_gets(redis_client) == (1, 0)


def test_more_requests_than_a_chunk_take_one_mget_per_chunk(redis_client: redis.Redis) -> None:
    prospects = [f"p{n}" for n in range(25)]
    for n, p in enumerate(prospects):
        if n % 2:
            redis_client.set(KEYS.state(p), encode_state(ProspectState(prospect=p, seq=n)))
    store = StateStore(redis_client, KEYS, Metrics(), chunk=10)
    redis_client.config_resetstat()
    for p in prospects:
        store.request(p)
    got = {p: store.take(p) for p in reversed(prospects)}
    assert _mgets_and_gets(redis_client) == (3, 0)
    assert got == {
        p: (ProspectState(prospect=p, seq=n) if n % 2 else None) for n, p in enumerate(prospects)
    }


def test_a_take_without_a_request_still_loads(redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.state("x"), encode_state(ProspectState(prospect="x", seq=7)))
    store = StateStore(redis_client, KEYS, Metrics())
    assert store.take("x") == ProspectState(prospect="x", seq=7)


def test_an_unreadable_state_stops_with_its_key_named(redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.state("broken"), b"\xc1 not msgpack")
    store = StateStore(redis_client, KEYS, Metrics())
    store.request("broken")
    with pytest.raises(RuntimeError, match="ckpt:state:broken is unreadable"):
        store.take("broken")


def test_prefetched_states_are_ready_and_cost_one_round_trip(redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.state("a"), encode_state(ProspectState(prospect="a", seq=3)))
    store = StateStore(redis_client, KEYS, Metrics(), keep=3)
    redis_client.config_resetstat()
    store.prefetch(["a", "new", "a"])
    assert store.ready("a")
    assert store.ready("new")
    assert not store.ready("other")
    assert store.take("a") == ProspectState(prospect="a", seq=3)
    assert store.take("new") is None
    assert _mgets_and_gets(redis_client) == (1, 0)
    store.prefetch(["a", "new"])  # taken already: this process holds their states now
    assert _mgets_and_gets(redis_client) == (1, 0)
    assert not store.ready("a")


def test_prefetched_states_nobody_takes_are_bounded(redis_client: redis.Redis) -> None:
    store = StateStore(redis_client, KEYS, Metrics(), keep=3)
    store.prefetch(["x1", "x2", "x3"])
    store.prefetch(["x4", "x5"])  # over `keep`: the untaken ones go
    assert [p for p in ["x1", "x2", "x3", "x4", "x5"] if store.ready(p)] == ["x4", "x5"]
    assert store.take("x1") is None  # still loads, one round trip of its own


def test_a_state_taken_from_the_prefetch_is_not_loaded_again(redis_client: redis.Redis) -> None:
    """Evicted from the prefetch, requested, prefetched again and taken from there: the pending
    request must not load it once more into memory that nobody takes from (a leak)."""
    store = StateStore(redis_client, KEYS, Metrics(), keep=1)
    store.prefetch(["p"])
    store.prefetch(["q"])  # over `keep`: p is dropped
    store.request("p")
    store.prefetch(["p"])
    assert store.take("p") is None
    store.request("x")
    assert store.take("x") is None
    assert store._loaded == {}


def test_a_prospect_back_before_its_checkpoint_resumes_from_the_unwritten_state(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """It left the worker (idle) while its newest state waited for the next checkpoint: the
    store must take that state from the commit sink, not the older one in Redis."""
    from connectors.effects import Effects
    from connectors.redis_client import client
    from connectors.redis_sink import CommitSink

    redis_client.set(KEYS.state("p"), encode_state(ProspectState(prospect="p", seq=1)))
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    try:
        newer = encode_state(ProspectState(prospect="p", seq=2))
        part.write_batch([("p", Effects([], newer, None, [], None))])
        store = StateStore(redis_client, KEYS, Metrics(), unwritten=sink.unwritten)
        first = store.take("p")
        assert first is not None
        assert first.seq == 2
        store.forget("p")
        part.checkpoint()
        assert sink.unwritten("p") is None
        again = store.take("p")
        assert again is not None
        assert again.seq == 2  # now from Redis
    finally:
        part.close()
