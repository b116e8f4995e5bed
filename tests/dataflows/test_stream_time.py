"""A kill changes no decision: timers fire in stream time (issue 12, item 1; contract section 6).

Real traffic in real time: prospects whose campaign requests wait in one-second arbitration
windows, interleaved with page views, proposal views and more requests, so windows come due
while the flow is down. The flow is killed with SIGKILL every one to two seconds and restarted
after a pause. Every event's `ts` is its arrival time (its entry id is `ts`), so three runs must
agree on every field of every command and decision record:

1. the run with kills;
2. an uninterrupted run over a copy of the same stream (same entry ids, another prefix);
3. `touchflow replay` of the same events, with `--until` at the end.

On main before stream time, a restart fired every window due by the wall clock before the
backlog's older events: commands moved in time and changed context.
"""

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import redis

from connectors.keys import OUT_CHANNELS, Keys, shard_of
from connectors.redis_server import EmbeddedRedis
from dataflows.replay import replay
from operators.engine import Engine
from operators.policy import load_policy
from operators.records import ENCODER
from operators.timeutil import format_ts, parse_ts
from tests.dataflows import live_harness as h

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CONFIG = """
[[caps]]
name = "week"
hours = 168
total = 100
per_channel = {{ email = 40, sms = 2, phone = 1, linkedin = 40, chat = 40 }}

[[caps]]
name = "day"
hours = 24
total = 8
exempt_own_action = true

[requests]
arbitration_seconds = 1

[gap]
hours = 0

[streams]
prefix = "{prefix}"
shards = 2
checkpoint_interval_ms = 100
claim_idle_ms = 1000
"""
PROSPECTS = 8
SECONDS = 14.0


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory()


@pytest.fixture
def r(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def _config(tmp: Path, prefix: str) -> Path:
    path = tmp / f"{prefix}.toml"
    path.write_text(CONFIG.format(prefix=prefix))
    return path


def _event(rng: random.Random, n: int, prospect: str, ts: int) -> dict[str, Any]:
    kind = rng.choice(["touch_request"] * 4 + ["page_view", "proposal_view", "touch_sent"])
    doc: dict[str, Any] = {"id": f"{prospect}-{n}", "type": kind, "prospect": prospect}
    doc["ts"] = format_ts(ts)
    if kind == "touch_request":
        doc |= {"channel": rng.choice(["email", "linkedin", "auto", "chat"]), "campaign": "c"}
        doc["priority"] = rng.randrange(10)
    elif kind == "page_view":
        doc["url"] = rng.choice(["/pricing", "/blog"])
    elif kind == "touch_sent":
        doc["channel"] = "email"
    return doc


def _produce(url: str, keys: Keys, seed: int, published: list[dict[str, Any]]) -> None:
    """Events at arrival time for `SECONDS`: each appended with the entry id `<ts>-*`."""
    rng = random.Random(seed)
    client = redis.Redis.from_url(url)
    last: dict[str, tuple[int, int]] = {}  # per stream: the last id's (ms, seq)
    end = time.monotonic() + SECONDS
    n = 0
    while time.monotonic() < end:
        prospect = f"p{rng.randrange(PROSPECTS)}"
        stream = keys.events(shard_of(prospect, keys.shards))
        ms, seq = last.get(stream, (0, 0))
        ts = time.time_ns() // 1_000_000
        seq = seq + 1 if ts <= ms else 0
        ts = max(ts, ms)
        last[stream] = (ts, seq)
        doc = _event(rng, n, prospect, ts)
        client.xadd(stream, {"event": msgspec.json.encode(doc)}, id=f"{ts}-{seq}")
        published.append(doc)
        n += 1
        time.sleep(rng.uniform(0.005, 0.06))
    client.close()


def _settled(r: redis.Redis, keys: Keys, by: int) -> bool:
    """Drained, and no timer due by `by` left waiting (requests deferred by a cap wait days)."""
    if not h.drained(r, keys):
        return False
    return all(r.zcount(keys.timers(s), "-inf", by) == 0 for s in range(keys.shards))


def _wait_settled(r: redis.Redis, keys: Keys, by: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _settled(r, keys, by):
        assert time.monotonic() < deadline, "the flow did not settle"
        time.sleep(0.2)


def _outputs(r: redis.Redis, keys: Keys) -> tuple[list[bytes], list[bytes]]:
    commands = sorted(f[b"command"] for ch in OUT_CHANNELS for _i, f in r.xrange(keys.commands(ch)))
    decisions = sorted({f[b"decision"] for _i, f in r.xrange(keys.decisions)})
    return commands, decisions


def test_a_run_with_kills_decides_every_timer_as_an_uninterrupted_run_and_replay(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    a, b = Keys(prefix="kill", shards=2), Keys(prefix="calm", shards=2)
    published: list[dict[str, Any]] = []
    producer = threading.Thread(target=_produce, args=(server.url, a, 12, published))
    rng = random.Random(12)
    log = tmp_path / "run.log"
    config_a = _config(tmp_path, "kill")
    proc = h.start_run(server.url, config_a, log=log)
    producer.start()
    kills = 0
    while producer.is_alive():
        time.sleep(rng.uniform(0.8, 2.0))
        h.kill9(proc)
        kills += 1
        time.sleep(rng.uniform(0.5, 2.0))  # windows come due while the flow is down
        proc = h.start_run(server.url, config_a, log=log)
    producer.join()
    until = max(parse_ts(e["ts"]) for e in published) + 5_000
    while time.time_ns() // 1_000_000 < until:  # the stream's time passes `until`
        time.sleep(0.2)
    try:
        _wait_settled(r, a, until)
    finally:
        assert h.stop(proc) == 0
    assert kills >= 4

    # The same stream, entry ids and all, under another prefix, run without interruption.
    for shard in range(a.shards):
        for entry_id, fields in r.xrange(a.events(shard)):
            r.xadd(b.events(shard), fields, id=entry_id)
    proc = h.start_run(server.url, _config(tmp_path, "calm"), log=tmp_path / "calm.log")
    try:
        _wait_settled(r, b, until)
    finally:
        assert h.stop(proc) == 0

    killed, calm = _outputs(r, a), _outputs(r, b)
    assert len(killed[0]) > 20, "traffic without commands proves nothing"
    assert any(b"request:c" in c for c in killed[0])
    assert killed == calm

    # Replay of the same events (their ts are their arrival times), every timer fired.
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in published))
    engine = Engine(load_policy(config_a))
    result = replay(path, engine, until=until)
    assert sorted(ENCODER.encode(c) for c in result.commands) == killed[0]
    assert sorted({ENCODER.encode(d) for d in result.decisions}) == killed[1]
    waited = [orjson.loads(d) for d in killed[1] if b'"deferred"' in d]
    assert len(published) > 100
    assert waited or any(b'"request:c"' in d for d in killed[1])
