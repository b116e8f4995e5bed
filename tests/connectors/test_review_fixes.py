"""Regressions found by review, each on a real Redis: a dropped timer's dead letter, an evicted
prospect's state read before a checkpoint finished, a wake-up's watermark ahead of its shard."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from connectors.checkpoint import StateStore
from connectors.dead_letters import DeadLetterSink
from connectors.effects import Effects
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import client
from connectors.redis_sink import CommitSink
from connectors.redis_source import WAKE_PREFIX, RedisEventSource, SourceSettings
from operators.records import DeadLetter
from operators.state import ProspectState, decode_state, encode_state

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="rv", shards=2)


def test_a_dropped_timers_dead_letter_is_written_without_an_entry(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """A timer whose decision raised has no stream entry: the sink used to crash on it."""
    part = DeadLetterSink(lambda: client(redis_test_url), KEYS, Metrics()).build("dead", 0, 1)
    try:
        letter = DeadLetter(event='{"timer": {}}', reason="timer raised OverflowError: x")
        part.write_batch([(letter, None)])
    finally:
        part.close()
    ((_id, fields),) = redis_client.xrange(KEYS.dead)
    assert fields == {b"event": b'{"timer": {}}', b"reason": b"timer raised OverflowError: x"}


def test_a_returning_prospect_never_gets_the_state_before_its_last_checkpoint(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """Prefetched while its newest state waited in the sink, taken after that state was
    written: the store must hand the newest state, not the one Redis held at the read."""
    redis_client.set(KEYS.state("p"), encode_state(ProspectState(prospect="p", seq=1)))
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    try:
        newer = ProspectState(prospect="p", seq=2, opted_out_all=True)
        part.write_batch([("p", Effects([], encode_state(newer), None, [], None))])
        store = StateStore(redis_client, KEYS, Metrics(), unwritten=sink.unwritten)
        store.prefetch(["p"])
        part.checkpoint()  # written: the sink holds nothing for p any more
        taken = store.take("p")
        assert taken is not None
        assert taken.opted_out_all
        assert decode_state(redis_client.get(KEYS.state("p")) or b"").seq == 2
    finally:
        part.close()


@pytest.fixture
def parts(redis_test_url: str) -> Iterator[list[Any]]:
    settings = SourceSettings(timers_every_ms=0, claim_every_ms=3_600_000)
    source = RedisEventSource(
        lambda: client(redis_test_url),
        KEYS,
        settings,
        make_reader_client=lambda: client(redis_test_url, retries=0),
    )
    built = [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    for part in built:
        part.next_batch()  # past the (empty) backlog
    yield built
    for part in built:
        part.close()


def test_a_wake_up_never_runs_ahead_of_its_own_shards_entries(
    redis_client: redis.Redis, parts: list[Any]
) -> None:
    """Shard 0 is quiet while shard 1's partition reads for both; an entry then arrives on
    shard 0, and a timer of shard 0 comes due after it. Shard 0's next batch must hand the
    entry before (or with) any wake-up past its time, never the wake-up alone."""
    quiet, busy = parts
    busy.next_batch()  # reads for both shards: shard 0's reply is empty
    time.sleep(0.02)
    entry = redis_client.xadd(KEYS.events(0), {"event": b"late"})
    due = int(entry.split(b"-")[0]) + 1
    redis_client.zadd(KEYS.timers(0), {"x": due})
    time.sleep(0.02)
    busy.next_batch()  # another read for the shards it finds nothing held for
    handed: list[tuple[int, bytes, bytes]] = []
    for _ in range(20):
        handed += quiet.next_batch()
        if any(raw == b"late" for _s, _i, raw in handed):
            break
    order = [(entry_id.startswith(WAKE_PREFIX), raw) for _s, entry_id, raw in handed]
    wakes = [i for i, (is_wake, raw) in enumerate(order) if is_wake and raw == b"x"]
    late = next(i for i, (_w, raw) in enumerate(order) if raw == b"late")
    assert all(i > late for i in wakes), order


def test_a_malformed_parked_entry_is_dead_lettered_not_a_failing_checkpoint(
    redis_client: redis.Redis,
) -> None:
    """The redrive runs inside the checkpoint: an entry it cannot read must not fail it."""
    from connectors.identity import index_profiles, parked_key

    keys = Keys()
    parked = parked_key(keys, "phone", "+14155550123")
    good = b'{"prospect":"","id":"twilio:SM1:opt_out","type":"opt_out","channel":"sms",'
    good += b'"ts":"2026-03-02T15:00:00Z"}'
    redis_client.rpush(parked, b'{"prospect":"","type":"opt_out"}', b"not json", good)
    moved = index_profiles(redis_client, keys, [("ann", None, "+14155550123")])
    assert moved == 1
    dead = [f[b"reason"] for _i, f in redis_client.xrange(keys.dead)]
    assert dead == [b"malformed parked event", b"malformed parked event"]
    assert not redis_client.exists(parked)
