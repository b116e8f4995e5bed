"""Bounded memory and a bounded Redis in a real live run (issue 12, item 4).

Prospects idle for `idle_evict_seconds` leave the worker (the gauge of prospects in memory goes
back to 0) and come back, from their checkpoint, on their next event, deciding exactly as if
they had stayed; acknowledged event entries are trimmed, so the event streams stay short over
many rounds of traffic.
"""

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from tests.dataflows import live_harness as h
from tests.dataflows.test_outage_live import _free_port, get, start_run_serving_metrics

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys(prefix="tft", shards=4)
NODE = 100  # Redis trims whole stream nodes


def _in_memory(port: int) -> float:
    _status, body = get(port, "/metrics")
    found = re.search(rb"^touchflow_prospects_in_memory (\S+)$", body, re.M)
    assert found is not None
    return float(found.group(1))


def test_idle_prospects_leave_and_come_back_and_streams_stay_short(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = embedded_redis_factory()
    r = redis.Redis.from_url(server.url)
    config = tmp_path / "bounded.toml"
    config.write_text(
        h.CONFIG.replace("claim_idle_ms = 1000", "claim_idle_ms = 1000\nidle_evict_seconds = 5")
        + "housekeeping_seconds = 1\n"
    )
    port = _free_port()
    events = h.make_events(prospects=60, per_prospect=24, seed=21)
    rounds = [events[i : i + 240] for i in range(0, len(events), 240)]
    proc = start_run_serving_metrics(server.url, config, port, tmp_path / "run.log")
    longest = 0
    try:
        for n, chunk in enumerate(rounds):
            h.publish(r, KEYS, chunk)
            h.wait_drained(r, KEYS)
            time.sleep(1.5)  # a housekeeping pass
            longest = max(longest, *(r.xlen(KEYS.events(s)) for s in range(KEYS.shards)))
            if n == 2:  # everyone idle: everyone leaves, and comes back with the next round
                assert _in_memory(port) > 0
                deadline = time.monotonic() + 20
                while _in_memory(port) > 0:
                    assert time.monotonic() < deadline, "idle prospects stayed in memory"
                    time.sleep(0.5)
    finally:
        assert h.stop(proc) == 0
    assert longest <= NODE + 20, "acknowledged entries were not trimmed"
    expected, states = h.oracle(events, config, tmp_path)
    got = h.live_commands(r, KEYS)
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(expected)
    assert h.live_states(r, KEYS, sorted(states)) == states
    r.close()
