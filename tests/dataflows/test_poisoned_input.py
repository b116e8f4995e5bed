"""Inputs that used to stop the flow, as a user and an attacker send them (issue 10).

Replay: one line nested a thousand deep made `replay` exit 1 with no output at all; a `ts` near
year 9999 did the same; a byte order mark lost the file's first event. Live: the same entries
among valid ones, plus an entry without an `event` field and one over the size limit; every valid
event must be processed, the flow must keep running, and each bad entry must be in the dead
stream with its reason, shard and entry id.
"""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import redis

from connectors.keys import Keys, shard_of
from connectors.redis_server import EmbeddedRedis
from tests.dataflows import live_harness as h


def _event(**fields: Any) -> bytes:
    doc = {"type": "touch_request", "prospect": "p2", "channel": "email", "campaign": "c"}
    return msgspec.json.encode(doc | fields)


NESTED = _event(id="n", prospect="p1", ts="2026-03-02T15:00:00Z")[:-1] + (
    b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}"
)
Y9999 = _event(id="y", ts="9999-12-31T23:59:59-05:00")
Y1 = _event(id="y1", ts="0001-01-01T00:00:00Z")
BAD = [NESTED, Y9999, Y1]


def touchflow(*args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "dataflows.cli", *args]
    return subprocess.run(cmd, capture_output=True, timeout=120, check=False)


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [msgspec.json.encode(e) for e in events]


def test_replay_survives_every_bad_line_and_gives_the_valid_lines_outputs(tmp_path: Path) -> None:
    valid = _lines(h.make_events(prospects=6, per_prospect=6, seed=5))
    clean, dirty = tmp_path / "clean.jsonl", tmp_path / "dirty.jsonl"
    clean.write_bytes(b"\n".join(valid) + b"\n")
    mixed = [b"\xef\xbb\xbf" + valid[0], *valid[1:3], *BAD, *valid[3:]]
    dirty.write_bytes(b"\n".join(mixed) + b"\n")
    until = ("--until", "2026-04-01T00:00:00Z")
    expected = touchflow("replay", str(clean), *until)
    dead = tmp_path / "dead.jsonl"
    got = touchflow("replay", str(dirty), *until, "--dead-letter", str(dead))
    assert got.returncode == 0, got.stderr.decode()
    assert expected.returncode == 0
    assert got.stdout == expected.stdout  # the BOM'd first event was applied too
    letters = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert [x["line"] for x in letters] == [4, 5, 6]
    assert "nested too deeply" in letters[0]["reason"]
    assert all("outside 2000-01-01" in x["reason"] for x in letters[1:])


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory()


@pytest.fixture
def r(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


@pytest.mark.redis
@pytest.mark.slow
def test_live_poisoned_entries_cost_only_themselves(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    keys = Keys(prefix="tft", shards=4)
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=20, per_prospect=6, seed=6)
    half = len(events) // 2
    proc = h.start_run(server.url, config, log=tmp_path / "run.log")
    try:
        h.publish(r, keys, events[:half])
        bad: list[tuple[int, bytes]] = []  # (shard, entry): ids repeat across shards
        for raw, prospect in zip(BAD, ("p1", "p2", "p2"), strict=True):
            shard = shard_of(prospect, keys.shards)
            bad.append((shard, r.xadd(keys.events(shard), {"event": raw})))
        no_field = r.xadd(keys.events(2), {"payload": b"{}"})
        big = _event(id="big", prospect="p3", ts="2026-03-02T15:00:00Z", topic="x" * 70_000)
        too_large = r.xadd(keys.events(shard_of("p3", keys.shards)), {"event": big})
        h.publish(r, keys, events[half:])
        h.wait_drained(r, keys)
        time.sleep(0.5)
        assert proc.poll() is None, "the flow stopped"
    finally:
        assert h.stop(proc) == 0
    got = sorted(h.live_commands(r, keys))
    expected, _states = h.oracle(events, config, tmp_path)
    assert got == sorted(expected)
    # Entry ids repeat across shards: a dead letter is known by (shard, entry).
    dead = {(int(f[b"shard"]), f[b"entry"]): f for _id, f in r.xrange(keys.dead)}
    assert set(dead) == {
        *bad,
        (2, no_field),
        (shard_of("p3", keys.shards), too_large),
    }
    assert dead[2, no_field][b"reason"] == b"missing field `event`"
    assert dead[shard_of("p3", keys.shards), too_large][b"reason"].startswith(b"event too large: ")
    assert b"nested too deeply" in dead[bad[0]][b"reason"]
