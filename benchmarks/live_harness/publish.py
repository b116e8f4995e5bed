"""What bench_live publishes, and how far the flow's consumer group has got through it."""

from __future__ import annotations

import random
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import redis

from connectors.keys import Keys, shard_of
from dataflows.demo.simulate import generate
from operators.timeutil import format_ts

EVENTS_PER_PROSPECT: Final = 10.0
MALFORMED: Final = 0.001

# A publishable item: (shard, event dict, malformed?). `ts` is set when it is published.
Item = tuple[int, dict[str, object], bool]


# -- stream entry ids -----------------------------------------------------------------------------


def id_ms(entry_id: bytes) -> int:
    """The server time (ms) in a stream entry id `<ms>-<seq>`."""
    return int(entry_id.split(b"-", 1)[0])


def id_key(entry_id: bytes) -> int:
    """A stream entry id as one int that sorts like the id."""
    ms, seq = entry_id.split(b"-", 1)
    return int(ms) << 32 | int(seq)


# -- the mix --------------------------------------------------------------------------------------


def make_mix(count: int, tag: str, shards: int, seed: int) -> list[Item]:
    """`count` items of simulated traffic, in time order, prospect ids prefixed with `tag`.

    Timestamps are left to the publisher (re-timed to the wall clock). 0.1 % of items are extra
    malformed copies (same prospect, `~bad` id, `ts` without offset at publish time).
    """
    prospects = max(1, int(count / EVENTS_PER_PROSPECT * 1.05) + 1)
    rows: list[dict[str, object]] = []
    while len(rows) < count:  # the simulator sizes by prospects: ask for more if it came out short
        rows = generate(
            prospects,
            seed=seed,
            start=datetime.now(UTC),
            events_per_prospect=EVENTS_PER_PROSPECT,
            stories=False,
        )
        prospects = int(prospects * 1.1) + 1
    rng = random.Random(seed)
    out: list[Item] = []
    for row in rows:
        if len(out) >= count:
            break
        prospect = f"{tag}{row['prospect']}"
        row["prospect"] = prospect
        row["id"] = f"{tag}{row['id']}"
        shard = shard_of(prospect, shards)
        if rng.random() < MALFORMED:
            out.append((shard, {**row, "id": f"{row['id']}~bad"}, True))
            if len(out) >= count:
                break
        out.append((shard, row, False))
    return out


def encode(item: Item, ts: str) -> bytes:
    """The item's JSON with `ts` set (a malformed item gets it without its `Z`)."""
    _shard, event, bad = item
    event["ts"] = ts[:-1] if bad else ts
    return orjson.dumps(event)


def now_ts() -> str:
    return format_ts(now_ms())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- publishing and progress ----------------------------------------------------------------------


@dataclass
class Progress:
    """Consumer-group progress over every shard, in entries."""

    published: int
    delivered: int
    acked: int

    @property
    def undelivered(self) -> int:
        return self.published - self.delivered

    @property
    def unacked(self) -> int:
        return self.published - self.acked


class Streams:
    """Publishes entries and tracks, per shard, the ids it published (to count delivered ones)."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r: Any = r
        self.keys = keys
        self.ids: list[list[int]] = [[] for _ in range(keys.shards)]
        self.published = 0

    def send(self, shards: Sequence[int], payloads: Sequence[bytes]) -> list[bytes]:
        """XADD each payload to its shard stream in one pipelined round trip; their entry ids."""
        pipe = self.r.pipeline(transaction=False)
        events = self.keys.events
        for shard, payload in zip(shards, payloads, strict=True):
            pipe.xadd(events(shard), {"event": payload})
        ids: list[bytes] = pipe.execute()
        for shard, entry_id in zip(shards, ids, strict=True):
            self.ids[shard].append(id_key(entry_id))
        self.published += len(ids)
        return ids

    def progress(self) -> Progress:
        """Delivered = our entries up to the group's last-delivered id; acked = that - pending."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.xinfo_groups(self.keys.events(shard))
        delivered = acked = 0
        for shard, groups in enumerate(pipe.execute()):
            for group in groups:
                if group["name"].decode() == self.keys.group:
                    d = bisect_right(self.ids[shard], id_key(group["last-delivered-id"]))
                    delivered += d
                    acked += d - int(group["pending"])
        return Progress(self.published, delivered, acked)

    def ready(self) -> bool:
        """Every shard stream has the flow's consumer group."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.xinfo_groups(self.keys.events(shard))
        try:
            replies = pipe.execute()
        except redis.ResponseError:  # a stream that does not exist yet
            return False
        return all(any(g["name"].decode() == self.keys.group for g in groups) for groups in replies)


def redis_stalls(r: redis.Redis) -> dict[str, int]:
    """What could have paused Redis itself so far: AOF rewrites (a fork each), fsyncs that fell
    behind, the last fork's duration, and the server's CPU seconds."""
    info: Any = r.info("all")
    return {
        "aof_rewrites": int(info.get("aof_rewrites", 0)),
        "aof_delayed_fsync": int(info.get("aof_delayed_fsync", 0)),
        "latest_fork_usec": int(info.get("latest_fork_usec", 0)),
        "used_cpu_sys_s": round(float(info.get("used_cpu_sys", 0))),
        "used_cpu_user_s": round(float(info.get("used_cpu_user", 0))),
    }
