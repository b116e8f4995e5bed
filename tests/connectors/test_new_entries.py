"""A quiet worker alone in its cluster waits in Redis for new entries (`connectors.new_entries`).

What matters is what a wrong wait would break: an entry appended while the source waits, or just
before it starts waiting, is read at once and exactly once; entries delivered earlier (pending,
not yet acknowledged) do not end the wait; a flow with several workers never waits.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from connectors.keys import Keys
from connectors.new_entries import QUIET_READS
from connectors.redis_client import client
from connectors.redis_source import RedisEventSource, SourceSettings

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="wait", shards=3)
LONG_MS = 20_000  # a wait no test may sit through: each checks that its wait ended early


def _source(url: str, block_ms: int) -> RedisEventSource:
    settings = SourceSettings(
        timers_every_ms=3_600_000, claim_every_ms=3_600_000, block_ms=block_ms
    )
    return RedisEventSource(
        lambda: client(url), KEYS, settings, make_reader_client=lambda: client(url, retries=0)
    )


@pytest.fixture
def quiet(redis_test_url: str) -> Iterator[list[Any]]:
    """One worker's partitions past their (empty) backlogs and quiet long enough to wait."""
    source = _source(redis_test_url, LONG_MS)
    parts = [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    try:
        for part in parts:
            assert part.next_batch() == []  # backlog: empty
        for _ in range(QUIET_READS):
            for part in parts:
                assert part.next_batch() == []
        yield parts
    finally:
        for part in parts:
            part.close()


def _poll_round(parts: list[Any]) -> list[tuple[int, bytes]]:
    got = []
    for part in parts:
        got += [(shard, raw) for shard, _id, raw in part.next_batch()]
    return got


def test_an_entry_appended_during_the_wait_ends_it_and_is_read_once(
    redis_client: redis.Redis, quiet: list[Any]
) -> None:
    assert quiet[0].next_awake() is None  # waiting in Redis replaces the grid
    timer = threading.Timer(0.3, lambda: redis_client.xadd(KEYS.events(2), {"event": b"late"}))
    timer.start()
    started = time.monotonic()
    got = _poll_round(quiet)
    timer.join()
    assert got == [(2, b"late")]
    assert time.monotonic() - started < LONG_MS / 1000 / 2
    assert _poll_round(quiet) == []  # read once: a new round (it waits again) finds nothing


def test_an_entry_appended_before_the_wait_starts_does_not_wait(
    redis_client: redis.Redis, quiet: list[Any]
) -> None:
    """The wait reads from the last entry its group delivered, not from "now" (`$`): an entry
    appended between the last read and the wait is already there."""
    redis_client.xadd(KEYS.events(1), {"event": b"early"})
    started = time.monotonic()
    assert _poll_round(quiet) == [(1, b"early")]
    assert time.monotonic() - started < LONG_MS / 1000 / 2


def test_pending_entries_do_not_end_the_wait_but_new_ones_after_them_do(
    redis_client: redis.Redis, quiet: list[Any]
) -> None:
    redis_client.xadd(KEYS.events(0), {"event": b"one"})
    assert _poll_round(quiet) == [(0, b"one")]  # delivered, never acknowledged
    for _ in range(QUIET_READS):  # quiet again, long enough to wait
        assert _poll_round(quiet) == []
    timer = threading.Timer(0.3, lambda: redis_client.xadd(KEYS.events(0), {"event": b"two"}))
    timer.start()
    got = _poll_round(quiet)
    timer.join()
    assert got == [(0, b"two")]


def test_a_flow_with_several_workers_never_waits(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    source = _source(redis_test_url, block_ms=0)
    parts = [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    try:
        for _ in range(QUIET_READS + 3):
            for part in parts:
                assert part.next_batch() == []
        assert all(part.next_awake() is not None for part in parts)  # polls on the grid
        redis_client.config_resetstat()
        for part in parts:
            part.next_batch()
        assert "cmdstat_xread" not in redis_client.info("commandstats")
    finally:
        for part in parts:
            part.close()


def test_no_wait_while_another_shard_still_reads_its_backlog(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """A shard working through its pending entries after a restart hands one batch per round:
    the quiet shards beside it must not make each round wait in Redis."""
    redis_client.xgroup_create(KEYS.events(1), KEYS.group, id="0", mkstream=True)
    for k in range(1000):  # delivered to shard 1's consumer before the "restart", never acked
        redis_client.xadd(KEYS.events(1), {"event": b"%d" % k})
    redis_client.xreadgroup(KEYS.group, KEYS.consumer(1), {KEYS.events(1): ">"}, count=1000)
    source = _source(redis_test_url, LONG_MS)
    parts = [source.build_part("events", str(n), None) for n in range(KEYS.shards)]
    started = time.monotonic()
    got: list[bytes] = []
    try:
        while len(got) < 1000:
            got += [raw for _shard, raw in _poll_round(parts)]
            assert time.monotonic() - started < LONG_MS / 1000 / 2, "a round waited"
    finally:
        for part in parts:
            part.close()
    assert got == [b"%d" % k for k in range(1000)]
