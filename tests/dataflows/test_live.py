"""Live mode on a real Redis with real `touchflow run` processes, checked against an oracle.

Faults as Flink and Kafka Streams test theirs: kill -9 the flow at random moments while a producer
publishes, restart Redis mid-run, change the worker count between runs; then every command id
must appear exactly once, the commands must be exactly the replay's, and every prospect's state
must equal that of applying each event exactly once.
"""

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from tests.dataflows import live_harness as h
from tests.reference import check

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys(prefix="tft", shards=4)


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory(appendonly=True, appendfsync="everysec")


@pytest.fixture
def r(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def _assert_effectively_once(
    r: redis.Redis, events: list[dict[str, Any]], config: Path, tmp: Path
) -> None:
    got = h.live_commands(r, KEYS)
    expected, states = h.oracle(events, config, tmp)
    assert len(got) == len(set(got)), "a command was written twice"
    assert sorted(got) == sorted(expected)
    assert h.live_states(r, KEYS, sorted(states)) == states
    import orjson

    decisions = [orjson.loads(f[b"decision"]) for _i, f in r.xrange(KEYS.decisions)]
    assert check(events, [orjson.loads(c) for c in got], decisions) == []


def test_run_and_publish_end_to_end(server: EmbeddedRedis, r: redis.Redis, tmp_path: Path) -> None:
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=20, per_prospect=10, seed=1)
    events.append({"id": "bad", "type": "page_view", "prospect": "p1", "ts": "yesterday"})
    proc = h.start_run(server.url, config, log=tmp_path / "run.log")
    try:
        h.publish(r, KEYS, events)
        h.wait_drained(r, KEYS)
    finally:
        assert h.stop(proc) == 0
    dead = r.xrange(KEYS.dead)
    assert len(dead) == 1
    assert b"$.ts" in dead[0][1][b"reason"]
    _assert_effectively_once(r, events[:-1], config, tmp_path)


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_nothing(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=60, per_prospect=40, seed=2)
    kills = h.publish_through_kills(
        server.url,
        KEYS,
        config,
        events,
        min_kills=10,
        batch=20,
        uptime_s=(1.0, 3.0),
        log=tmp_path / "run.log",
        rng=random.Random(2),
    )
    assert kills >= 10
    _assert_effectively_once(r, events, config, tmp_path)


def test_redis_restart_mid_run_reconnects_and_loses_nothing(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=30, per_prospect=20, seed=3)
    half = len(events) // 2
    proc = h.start_run(server.url, config, log=tmp_path / "run.log")
    try:
        h.publish(r, KEYS, events[:half])
        time.sleep(0.5)
        server.restart()  # same port and data dir; AOF with appendfsync everysec
        fresh = redis.Redis.from_url(server.url)
        h.publish(fresh, KEYS, events[half:])
        h.wait_drained(fresh, KEYS, timeout=120)
        assert proc.poll() is None, "the flow died instead of reconnecting"
    finally:
        assert h.stop(proc) == 0
    fresh = redis.Redis.from_url(server.url)
    _assert_effectively_once(fresh, events, config, tmp_path)
    fresh.close()


def test_changing_the_worker_count_between_runs_gives_the_same_outcome(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=40, per_prospect=16, seed=4)
    third = len(events) // 3
    for workers, chunk in (
        (1, events[:third]),
        (2, events[third : 2 * third]),
        (1, events[2 * third :]),
    ):
        proc = h.start_run(server.url, config, workers=workers, log=tmp_path / f"run{workers}.log")
        try:
            h.publish(r, KEYS, chunk)
            h.wait_drained(r, KEYS, timeout=120)
        finally:
            assert h.stop(proc) == 0
    _assert_effectively_once(r, events, config, tmp_path)
