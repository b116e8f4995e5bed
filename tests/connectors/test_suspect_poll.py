"""A worker that waits in Redis when quiet (`block_ms`) still polls every 20 ms while a suspect
is pending (the wait used to clear that poll: the partitions asked to be polled at once, and the
worker spun). On a real Redis, with the partitions driven as Bytewax drives them: each polled
when its `next_awake()` has passed (or is None), the worker asleep until the earliest one.
"""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from connectors.keys import Keys
from connectors.new_entries import QUIET_READS
from connectors.redis_client import client
from connectors.redis_source import Entry, RedisEventSource, SourceSettings

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="suspect-poll", shards=2)
LIMIT = 3
BLOCK_MS = 4_000  # a wait in Redis no test may sit through
POLL = timedelta(milliseconds=20)  # a suspect's poll


def _source(url: str, timers_every_ms: int) -> RedisEventSource:
    """The source of a worker alone in its cluster: quiet, it waits in Redis."""
    settings = SourceSettings(
        max_deliveries=LIMIT,
        timers_every_ms=timers_every_ms,
        claim_every_ms=3_600_000,
        block_ms=BLOCK_MS,
    )
    return RedisEventSource(
        lambda: client(url), KEYS, settings, make_reader_client=lambda: client(url, retries=0)
    )


@pytest.fixture
def parts() -> Iterator[list[Any]]:
    built: list[Any] = []
    yield built
    for part in built:
        part.close()


def _drive(
    parts: list[Any], seconds: float, handed: Callable[[int, list[Entry]], bool]
) -> list[int]:
    """Poll as Bytewax does for `seconds`, or until `handed(shard, batch)` says stop; checks
    that no poll waits in Redis, and that a part asking for its 20 ms poll gets it. Returns
    the number of polls of each part."""
    polls = [0] * len(parts)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        due = [n for n, part in enumerate(parts) if (part.next_awake() or now) <= now]
        for n in due:
            started = time.monotonic()
            batch = parts[n].next_batch()
            assert time.monotonic() - started < BLOCK_MS / 1000 / 2, "a poll waited in Redis"
            polls[n] += 1
            if handed(n, batch):
                return polls
        wakes = [part.next_awake() for part in parts]
        if None not in wakes:
            time.sleep(max(0.0, (min(wakes) - datetime.now(UTC)).total_seconds()))
    return polls


def _quiet(parts: list[Any]) -> None:
    """Past their empty backlogs and quiet long enough: the next read would wait in Redis."""
    for _ in range(1 + QUIET_READS):
        for part in parts:
            assert part.next_batch() == []
    assert all(part.next_awake() is None for part in parts)  # waiting in Redis, no grid


def test_a_worker_paused_by_another_process_suspect_polls_every_20_ms(
    redis_client: redis.Redis, redis_test_url: str, parts: list[Any]
) -> None:
    """Another process holds the suspect lock: this worker, quiet enough to wait in Redis,
    pauses on the 20 ms poll (it spun: every read returned at once, asking to be polled at
    once), and reads on once the lock is released."""
    source = _source(redis_test_url, timers_every_ms=10)  # the lock is looked at every 10 ms
    parts += [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    _quiet(parts)
    redis_client.set(KEYS.suspect_lock, b"shard 5 of another process")
    time.sleep(0.05)  # past the timer poll: the next reads look at the lock
    for part in parts:
        before = datetime.now(UTC)
        assert part.next_batch() == []
        after = datetime.now(UTC)
        awake = part.next_awake()
        assert awake is not None, "the quiet wait cleared the suspect's poll"
        assert before + POLL <= awake <= after + POLL
    seconds = 0.3
    polls = _drive(parts, seconds, lambda _shard, batch: bool(batch))
    assert max(polls) <= seconds / POLL.total_seconds() + 3, f"spun: {polls} polls"

    redis_client.xadd(KEYS.events(1), {"event": b"after"})
    redis_client.delete(KEYS.suspect_lock)
    got: list[bytes] = []

    def read(_shard: int, batch: list[Entry]) -> bool:
        got.extend(raw for _s, _id, raw in batch)
        return bool(got)

    _drive(parts, 5, read)
    assert got == [b"after"]


def test_a_suspect_waits_for_its_turn_on_a_20_ms_poll(
    redis_client: redis.Redis, redis_test_url: str, parts: list[Any]
) -> None:
    """Shard 0's backlog: view-0, then view-1 delivered more than `max_deliveries` times (a
    suspect). view-0 is handed and stays in flight for a while; meanwhile shard 1 is quiet
    long enough for the worker to wait in Redis. The suspect must be looked at every 20 ms
    through both waits (view-0 in flight, then the half second of its claim window), no
    read may wait in Redis meanwhile, and it is handed alone."""
    view0 = redis_client.xadd(KEYS.events(0), {"event": b"view-0"})
    redis_client.xadd(KEYS.events(0), {"event": b"view-1"})
    redis_client.xgroup_create(KEYS.events(0), KEYS.group, id="0", mkstream=True)
    redis_client.xreadgroup(KEYS.group, KEYS.consumer(0), {KEYS.events(0): ">"})
    for _ in range(LIMIT):  # view-1 alone delivered again (pending entries after view-0)
        redis_client.xreadgroup(KEYS.group, KEYS.consumer(0), {KEYS.events(0): view0}, count=1)
    source = _source(redis_test_url, timers_every_ms=3_600_000)
    parts += [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    batches: list[list[bytes]] = []

    def shard_0(shard: int, batch: list[Entry]) -> bool:
        if shard == 0:
            if batch:
                batches.append([raw for _s, _id, raw in batch])
            else:  # waiting for its suspect's turn: on the 20 ms poll
                before = datetime.now(UTC)
                awake = parts[0].next_awake()
                assert awake is not None, "the quiet wait cleared the suspect's poll"
                assert awake <= before + POLL
        return len(batches) == 2

    in_flight = 0.3  # view-0's processing: shard 1 meanwhile reads QUIET_READS times
    polls = _drive(parts, in_flight, shard_0)
    assert batches == [[b"view-0"]]
    assert polls[1] > QUIET_READS  # the worker was quiet long enough to wait in Redis
    redis_client.xack(KEYS.events(0), KEYS.group, view0)
    started = time.monotonic()
    polls = _drive(parts, 5, shard_0)
    took = time.monotonic() - started
    assert batches == [[b"view-0"], [b"view-1"]]  # the suspect, alone
    assert took < 0.5 + 0.5  # its claim window, and a few polls after it
    assert polls[0] <= took / POLL.total_seconds() + 3, f"spun: {polls} polls"
