"""Redis stays bounded: acknowledged input is trimmed, outputs keep a retention window.

A deployment runs for months; without trimming every stream grows without bound. Event entries
are needed only until every consumer group has acknowledged them (after a crash, pending entries
are read again; acknowledged ones never are), so each shard stream is trimmed below the oldest
entry some group still needs: its oldest pending entry, or the next one it has not read yet.
Command, decision and dead-letter streams are read by others (senders, auditors, whoever fixes
bad input), so they keep `retention_ms` of history by entry time (Redis's clock).

Trimming is approximate (`MINID ~`): Redis drops whole internal nodes only, which is cheap, and
keeps at most a node's worth (about a hundred entries) more than asked.
"""

from typing import Any

import redis
from redis.exceptions import ResponseError

from connectors.keys import OUT_CHANNELS, Keys


def trim_events(r: redis.Redis, keys: Keys) -> int:
    """Trim each shard's event stream below what any consumer group still needs; entries
    removed (approximately: Redis reports what it dropped)."""
    removed = 0
    client: Any = r
    for shard in range(keys.shards):
        stream = keys.events(shard)
        floor = _needed_from(client, stream)
        if floor is not None:
            removed += int(client.xtrim(stream, minid=floor, approximate=True))
    return removed


def _needed_from(r: Any, stream: str) -> bytes | None:
    """The lowest entry id any group of `stream` may still read, or None to keep everything
    (no group yet: whoever creates one reads from the start)."""
    try:
        groups = r.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    if not groups:
        return None
    floor: bytes | None = None
    for group in groups:
        if group["pending"]:
            oldest = r.xpending_range(stream, group["name"], "-", "+", 1)
            needed = oldest[0]["message_id"] if oldest else group["last-delivered-id"]
        else:
            needed = _next_id(group["last-delivered-id"])
        floor = needed if floor is None or _id_key(needed) < _id_key(floor) else floor
    return floor


def trim_outputs(r: redis.Redis, keys: Keys, retention_ms: int, now_ms: int) -> int:
    """Drop command, decision and dead-letter entries older than `retention_ms`."""
    floor = f"{max(0, now_ms - retention_ms)}-0"
    streams = [keys.commands(ch) for ch in OUT_CHANNELS] + [keys.decisions, keys.dead]
    client: Any = r
    return sum(int(client.xtrim(s, minid=floor, approximate=True)) for s in streams)


def _next_id(entry_id: bytes) -> bytes:
    ms, _, seq = entry_id.partition(b"-")
    return b"%d-%d" % (int(ms), int(seq or b"0") + 1)


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or b"0")
