"""The event source on a real Redis: one round trip reads every shard's new entries."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from connectors.keys import Keys
from connectors.redis_client import client
from connectors.redis_source import RedisEventSource, SourceSettings
from tests.connectors.stall import stalled

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="src", shards=3)
# No timer polls or claims in the way of what is counted.
SETTINGS = SourceSettings(timers_every_ms=3_600_000, claim_every_ms=3_600_000)


def _pending(r: redis.Redis, shard: int) -> int:
    return int(r.xpending(KEYS.events(shard), KEYS.group)["pending"])


@pytest.fixture
def parts(redis_client: redis.Redis, redis_test_url: str) -> Iterator[list[Any]]:
    """One worker's partitions for every shard, each past its (empty) backlog."""
    source = RedisEventSource(
        lambda: client(redis_test_url),
        KEYS,
        SETTINGS,
        make_reader_client=lambda: client(redis_test_url, retries=0),
    )
    built = [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    try:
        for part in built:
            assert part.next_batch() == []
        yield built
    finally:
        for part in built:
            part.close()


def test_the_first_partition_polled_reads_for_every_shard(
    redis_client: redis.Redis, parts: list[Any]
) -> None:
    for shard in range(KEYS.shards):
        for k in range(2):
            redis_client.xadd(KEYS.events(shard), {"event": f"s{shard}-{k}".encode()})
    first = parts[0].next_batch()
    assert [raw for _s, _id, raw in first] == [b"s0-0", b"s0-1"]
    # Shards 1 and 2 were read in the same round trip: delivered, waiting for their partition.
    assert [_pending(redis_client, shard) for shard in (1, 2)] == [2, 2]
    redis_client.config_resetstat()
    got = [parts[n].next_batch() for n in (1, 2)]
    assert [[(s, raw) for s, _id, raw in batch] for batch in got] == [
        [(1, b"s1-0"), (1, b"s1-1")],
        [(2, b"s2-0"), (2, b"s2-1")],
    ]
    assert "cmdstat_xreadgroup" not in redis_client.info("commandstats")


def test_a_shard_whose_group_vanished_recovers_without_stopping_the_others(
    redis_client: redis.Redis, parts: list[Any]
) -> None:
    redis_client.delete(KEYS.events(1))  # Redis lost the stream and its group
    redis_client.xadd(KEYS.events(0), {"event": b"a"})
    assert [raw for _s, _i, raw in parts[0].next_batch()] == [b"a"]
    assert parts[1].next_batch() == []  # NOGROUP: group created again, backlog first
    redis_client.xadd(KEYS.events(1), {"event": b"b"})
    seen = [raw for _ in range(3) for _s, _i, raw in parts[1].next_batch()]
    assert seen == [b"b"]


def test_entries_whose_read_reply_was_lost_are_read_again_from_the_pending_list(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """The shared read reaches Redis while it is busy; the client gives up waiting (timeout),
    then Redis runs the read and delivers the entry into a reply nobody reads. The shard must
    find the entry in its pending list, once (not 30 s later through XAUTOCLAIM)."""

    def impatient_reader() -> redis.Redis:
        r = client(redis_test_url, retries=0)
        r.connection_pool.connection_kwargs["socket_timeout"] = 0.3
        return r

    source = RedisEventSource(
        lambda: client(redis_test_url), KEYS, SETTINGS, make_reader_client=impatient_reader
    )
    part = source.build_part("events", "1", None)
    try:
        assert part.next_batch() == []  # its (empty) backlog
        assert part.next_batch() == []  # its first claim of idle entries, none
        entry = redis_client.xadd(KEYS.events(1), {"event": b"lost"})
        sleeper = stalled(redis_test_url, 1.0)
        assert part.next_batch() == []  # timed out; Redis runs the read after its sleep
        sleeper.join()
        assert _pending(redis_client, 1) == 1, "Redis delivered it into the lost reply"
        seen = [(entry_id, raw) for _ in range(4) for _s, entry_id, raw in part.next_batch()]
        assert seen == [(entry, b"lost")]
        redis_client.xadd(KEYS.events(1), {"event": b"next"})
        assert [raw for _s, _i, raw in part.next_batch()] == [b"next"]
    finally:
        part.close()
