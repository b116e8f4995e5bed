"""Redis stays bounded (issue 12, item 4): trimmed input never loses what a group still needs."""

import pytest
import redis

from connectors.keys import Keys
from connectors.trim import trim_events, trim_outputs

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="trim", shards=1)
NODE = 100  # Redis trims whole nodes of up to 100 entries (stream-node-max-entries)


def test_event_streams_keep_every_pending_and_unread_entry(redis_client: redis.Redis) -> None:
    stream = KEYS.events(0)
    ids = [redis_client.xadd(stream, {"event": b"%d" % n}) for n in range(1000)]
    redis_client.xgroup_create(stream, KEYS.group, id="0")
    redis_client.xreadgroup(KEYS.group, "shard-0", {stream: ">"}, count=950)
    redis_client.xack(stream, KEYS.group, *ids[:900])
    trim_events(redis_client, KEYS)
    left = [entry_id for entry_id, _f in redis_client.xrange(stream)]
    assert ids[900:] == left[-100:], "pending (900-949) and unread (950-999) entries stay"
    assert len(left) <= 100 + NODE
    redis_client.xack(stream, KEYS.group, *ids[900:950])
    redis_client.xreadgroup(KEYS.group, "shard-0", {stream: ">"})
    redis_client.xack(stream, KEYS.group, *ids[950:])
    trim_events(redis_client, KEYS)
    assert redis_client.xlen(stream) <= NODE


def test_a_stream_without_a_group_is_left_alone(redis_client: redis.Redis) -> None:
    for n in range(300):
        redis_client.xadd(KEYS.events(0), {"event": b"%d" % n})
    trim_events(redis_client, KEYS)
    assert redis_client.xlen(KEYS.events(0)) == 300


def test_outputs_keep_their_retention_window(redis_client: redis.Redis) -> None:
    for ms in range(1, 1001):
        redis_client.xadd(KEYS.decisions, {"decision": b"{}"}, id=f"{ms * 1000}-0")
    trim_outputs(redis_client, KEYS, retention_ms=200_000, now_ms=1_000_000)
    left = [int(i.split(b"-")[0]) for i, _f in redis_client.xrange(KEYS.decisions)]
    assert left[-201:] == [ms * 1000 for ms in range(800, 1001)]
    assert len(left) <= 201 + NODE
