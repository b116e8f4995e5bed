"""The poison limit counts only the culprit (issue 10, item 2), on a real Redis.

The reproduction: after the process had died `max_deliveries` times on one entry, every entry
pending with it went to the dead letters: 0 of 40 valid pricing-page views got their invite.
Here a process "dies" by dropping its partition without acknowledging anything; the flow's
commit sink is played by acknowledging what the partition hands on.
"""

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from connectors.keys import Keys
from connectors.redis_client import client
from connectors.redis_source import RedisEventSource, SourceSettings

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="poison", shards=2)
LIMIT = 3
SETTINGS = SourceSettings(max_deliveries=LIMIT, timers_every_ms=3_600_000, claim_every_ms=3_600_000)


def make_source(redis_test_url: str) -> RedisEventSource:
    """The source of one process."""
    return RedisEventSource(
        lambda: client(redis_test_url),
        KEYS,
        SETTINGS,
        make_reader_client=lambda: client(redis_test_url, retries=0),
    )


@pytest.fixture
def source(redis_test_url: str) -> RedisEventSource:
    return make_source(redis_test_url)


def _crashed_with(r: redis.Redis, entries: list[bytes], times: int) -> list[bytes]:
    """Entries of shard 0 delivered `times` times to its consumer and never acknowledged."""
    ids = [r.xadd(KEYS.events(0), {"event": e}) for e in entries]
    r.xgroup_create(KEYS.events(0), KEYS.group, id="0", mkstream=True)
    r.xreadgroup(KEYS.group, KEYS.consumer(0), {KEYS.events(0): ">"})
    for _ in range(times - 1):
        r.xreadgroup(KEYS.group, KEYS.consumer(0), {KEYS.events(0): "0"})
    return ids


def _drain(r: redis.Redis, parts: list[Any], seconds: float = 30) -> list[list[bytes]]:
    """Poll like the flow, acknowledging whatever is handed on; the batches of shard 0."""
    batches = []
    deadline = time.monotonic() + seconds  # each suspect waits half a second for its lock
    while time.monotonic() < deadline:
        for shard, part in enumerate(parts):
            batch = part.next_batch()
            if batch and shard == 0:
                batches.append([raw for _s, _id, raw in batch])
            for s, entry_id, _raw in batch:
                r.xack(KEYS.events(s), KEYS.group, entry_id)
        if not r.xpending(KEYS.events(0), KEYS.group)["pending"] and not r.exists(KEYS.suspect(0)):
            break
        time.sleep(0.005)
    return batches


@pytest.fixture
def parts(source: RedisEventSource) -> Iterator[list[Any]]:
    built: list[Any] = []
    yield built
    for part in built:
        part.close()


def test_innocent_entries_delivered_too_often_are_processed_one_by_one(
    redis_client: redis.Redis, source: RedisEventSource, parts: list[Any]
) -> None:
    events = [f"view-{n}".encode() for n in range(6)]
    _crashed_with(redis_client, events, times=LIMIT + 2)
    parts += [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    batches = _drain(redis_client, parts)
    assert batches == [[e] for e in events]  # each alone, in order, none lost
    assert redis_client.xlen(KEYS.dead) == 0
    assert not redis_client.exists(KEYS.suspect(0))


def test_the_entry_in_flight_alone_when_the_process_died_is_the_only_one_dead_lettered(
    redis_client: redis.Redis, redis_test_url: str, source: RedisEventSource, parts: list[Any]
) -> None:
    events = [f"view-{n}".encode() for n in range(5)]
    ids = _crashed_with(redis_client, events, times=LIMIT + 1)
    parts += [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    handed: list[bytes] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # run until view-2 is handed alone; then it dies
        batch = parts[0].next_batch()
        handed += [raw for _s, _i, raw in batch]
        if b"view-2" in handed:
            break
        for s, entry_id, _raw in batch:
            redis_client.xack(KEYS.events(s), KEYS.group, entry_id)
        time.sleep(0.005)
    assert handed == [b"view-0", b"view-1", b"view-2"]
    assert redis_client.get(KEYS.suspect(0)) == ids[2]
    assert parts[1].next_batch() == []  # the other shard waits while a suspect is alone
    redis_client.xadd(KEYS.events(1), {"event": b"other"})
    assert parts[1].next_batch() == []
    for part in parts:  # the process dies: nothing more is acknowledged
        part.close()
    parts.clear()
    restarted = make_source(redis_test_url)
    parts += [restarted.build_part("events", str(n), None) for n in range(KEYS.shards)]
    batches = _drain(redis_client, parts)
    assert batches == [[b"view-3"], [b"view-4"]]
    ((_id, letter),) = redis_client.xrange(KEYS.dead)
    assert letter[b"entry"] == ids[2]
    assert letter[b"event"] == b"view-2"
    assert letter[b"shard"] == b"0"
    assert b"died while processing this entry alone" in letter[b"reason"]
    assert not redis_client.exists(KEYS.suspect(0))


def test_entries_delivered_less_often_than_the_limit_go_in_batches(
    redis_client: redis.Redis, source: RedisEventSource, parts: list[Any]
) -> None:
    events = [f"view-{n}".encode() for n in range(4)]
    _crashed_with(redis_client, events, times=LIMIT - 1)
    parts += [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    assert _drain(redis_client, parts) == [events]


def test_a_suspect_pauses_the_other_processes_of_a_cluster(
    redis_client: redis.Redis, redis_test_url: str, parts: list[Any]
) -> None:
    """Shard 0's process hands a suspect; another process, reading shard 1, must hand nothing
    while it is in flight (if any process dies, the whole cluster goes down with it)."""
    _crashed_with(redis_client, [b"view-0"], times=LIMIT + 1)
    settings = SourceSettings(max_deliveries=LIMIT, timers_every_ms=10, claim_every_ms=3_600_000)
    here = RedisEventSource(
        lambda: client(redis_test_url), KEYS, settings,
        make_reader_client=lambda: client(redis_test_url, retries=0),
    )  # fmt: skip
    there = RedisEventSource(
        lambda: client(redis_test_url), KEYS, settings,
        make_reader_client=lambda: client(redis_test_url, retries=0),
    )  # fmt: skip
    parts += [here.build_part("events", "0", None), there.build_part("events", "1", None)]
    mine, theirs = parts
    assert theirs.next_batch() == []  # its empty backlog
    handed: list[bytes] = []
    deadline = time.monotonic() + 10
    while not handed and time.monotonic() < deadline:
        handed = [raw for _s, _i, raw in mine.next_batch()]
        time.sleep(0.005)
    assert handed == [b"view-0"]
    assert redis_client.get(KEYS.suspect_lock) == b"0"
    redis_client.xadd(KEYS.events(1), {"event": b"other"})
    time.sleep(0.05)  # past its timer poll: it has looked at the lock
    assert [theirs.next_batch() for _ in range(5)] == [[]] * 5
    ((entry_id, _fields),) = redis_client.xrange(KEYS.events(0))
    redis_client.xack(KEYS.events(0), KEYS.group, entry_id)  # the flow processed it
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        mine.next_batch()  # sees the suspect acknowledged: releases the lock
        got = [raw for _s, _i, raw in theirs.next_batch()]
        time.sleep(0.02)
    assert got == [b"other"]
    assert not redis_client.exists(KEYS.suspect_lock)
