"""New entries of every shard a worker reads, fetched in one round trip (`NewEntries`).

Bytewax polls a worker's partitions one after another; with an XREADGROUP round trip each, those
waits were a third of the worker's time at 5k events/s on two busy cores. Here the first
partition polled reads for every shard past its backlog that has nothing waiting (one pipeline of
XREADGROUPs, each shard under its own consumer name), and the others take what was read for them.
Entries waiting here are already delivered: if the process dies, they are in their shard's
pending list and come back as backlog. Its client must not retry on its own: a pipeline re-sent
after a lost reply would read past the entries Redis delivered.

Waiting in Redis when idle. A quiet flow that polls on a grid pays Bytewax's whole loop at every
poll (a py-spy profile of an idle flow: 87 % of its CPU inside Bytewax), so a flow that is alone
(one worker in its cluster: nothing else for it to do while its shards are quiet) waits in Redis
instead: once every shard it reads has been quiet for `QUIET_READS` reads, the next read first
blocks in one XREAD over all its streams, from the last entry each group delivered, for at most
`block_ms`. An entry appended meanwhile ends the wait at once, so a trigger after a quiet spell
is read sooner than on the grid. The wait bounds how late the partitions see their timers and
the stop flag (`block_ms`, 100 ms, well under the 250 ms timer poll). With several workers the
flow polls on the grid as before: a worker blocked in Redis would hold up the items the others
exchange with it.
"""

import time
from typing import Any, Final

import redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from connectors.keys import Keys

_CLOCK_EVERY_S: Final = 30.0  # how often the offset to Redis's clock is measured again
QUIET_READS: Final = 3  # reads that found nothing on any shard before a read may wait in Redis

# What `event_field` returns for an entry without an `event` field (compared by identity: a
# value read from Redis is always a new object).
NO_EVENT_FIELD: Final = b"\x00no event field"

RawEntry = tuple[bytes, bytes | None]  # (entry id, its `event` field or None if deleted)


class NewEntries:
    """What every live shard of one worker has new, read for all of them at once."""

    def __init__(self, client: redis.Redis, keys: Keys, count: int, *, block_ms: int = 0) -> None:
        """`block_ms`: how long a read may wait in Redis once every shard is quiet (0: never;
        only for a worker alone in its cluster, see the module doc)."""
        self._r: Any = client
        self._keys = keys
        self._count = count
        self._block_ms = block_ms
        self._live: set[int] = set()
        self._read: dict[int, list[RawEntry] | Exception] = {}
        self._sent_at: dict[int, int] = {}  # per shard: Redis time (ms) its read was sent
        self._delivered: dict[int, bytes] = {}  # per shard: the last entry id its group delivered
        self._quiet_reads = 0  # reads in a row that found nothing on any shard
        self._offset_ms = 0  # Redis's clock minus the worker's
        self._offset_at = float("-inf")
        self._partitions = 0
        # The shard whose suspect entry is in flight alone: every other shard waits for it.
        self.suspect_shard: int | None = None

    @property
    def waits(self) -> bool:
        """Reads wait in Redis now (the flow is alone and quiet): poll again at once. Never
        while a shard of this worker still reads its backlog (it is not live yet): its batches
        come one per round, and a round must not wait."""
        return (
            self._block_ms > 0
            and self._quiet_reads >= QUIET_READS
            and len(self._live) == self._partitions
        )

    def join(self, shard: int) -> None:
        """The shard's backlog is done: its new entries come from here."""
        self._live.add(shard)

    def leave(self, shard: int) -> None:
        """The shard reads its backlog again; what was read for it is pending, so dropped."""
        self._live.discard(shard)
        self._read.pop(shard, None)
        self._sent_at.pop(shard, None)
        self._delivered.pop(shard, None)
        self._quiet_reads = 0

    def redis_ms(self) -> int:
        """Redis's clock now, from the worker's and an offset measured every 30 s."""
        now = time.monotonic()
        if now - self._offset_at >= _CLOCK_EVERY_S:
            seconds, micros = self._r.time()
            self._offset_ms = (
                int(seconds) * 1000 + int(micros) // 1000 - time.time_ns() // 1_000_000
            )
            self._offset_at = now
        return time.time_ns() // 1_000_000 + self._offset_ms

    def take(self, shard: int) -> tuple[list[RawEntry], int]:
        """What was read for `shard` (reading for every live shard if needed), and the Redis
        time that read was sent: every entry appended before it is in the reply."""
        if shard not in self._read:
            self._fill()
        got = self._read.pop(shard, [])
        sent_at = self._sent_at.pop(shard, 0)
        if isinstance(got, Exception):
            raise got
        return got, sent_at

    def attach(self) -> None:
        self._partitions += 1

    def detach(self, shard: int) -> None:
        """A partition closed; the last one closes the client."""
        self.leave(shard)
        if self.suspect_shard == shard:
            self.suspect_shard = None
        self._partitions -= 1
        if self._partitions == 0:
            self._r.close()

    def _fill(self) -> None:
        # An empty reply held for a shard delivered nothing: read that shard again too, so its
        # watermark and its next entries are not those of an old read.
        for shard in [s for s, got in self._read.items() if got == []]:
            del self._read[shard]
        shards = sorted(s for s in self._live if s not in self._read)
        if self.waits and self.suspect_shard is None and shards == sorted(self._live):
            self._wait_for_entries(shards)
        keys = self._keys
        pipe = self._r.pipeline(transaction=False)
        for shard in shards:
            pipe.execute_command(*read_command(keys, shard, self._count, b">"))
        sent_at = self.redis_ms()
        try:
            replies = pipe.execute(raise_on_error=False)
        except (ConnectionError, TimeoutError, OSError) as exc:
            # Redis may have run the reads and the replies were lost: every shard in this
            # pipeline must look for its entries in its pending list (see `_ShardPartition`).
            replies = [exc] * len(shards)
        found = False
        for shard, reply in zip(shards, replies, strict=True):
            got = reply if isinstance(reply, Exception) else parse_read(reply)
            self._read[shard] = got
            self._sent_at[shard] = sent_at
            if got:
                found = True
                if not isinstance(got, Exception):
                    self._delivered[shard] = got[-1][0]
        self._quiet_reads = 0 if found or not shards else self._quiet_reads + 1

    def _wait_for_entries(self, shards: list[int]) -> None:
        """Block until an entry is appended to one of `shards` after the last its group
        delivered, or `block_ms` passed. What it returns is not used: the group read after it
        delivers the entries. Any error ends the wait; the group read then meets it too."""
        try:
            ids = [self._last_delivered(shard) for shard in shards]
            if None in ids:  # a shard without its group (Redis lost its data): no waiting
                return
            streams = [self._keys.events(shard) for shard in shards]
            self._r.execute_command(
                "XREAD", "COUNT", 1, "BLOCK", self._block_ms, "STREAMS", *streams, *ids
            )
        except (ConnectionError, TimeoutError, OSError, ResponseError):
            self._quiet_reads = 0

    def _last_delivered(self, shard: int) -> bytes | None:
        """The id after which the shard's group delivers next (asked once, then kept); None if
        the shard has no group."""
        known = self._delivered.get(shard)
        if known is None:
            groups = self._r.execute_command("XINFO", "GROUPS", self._keys.events(shard))
            group = self._keys.group.encode()
            known = next(
                (_field(g, b"last-delivered-id") for g in groups if _field(g, b"name") == group),
                None,
            )
            if known is not None:
                self._delivered[shard] = known
        return known


def _field(flat: list[Any], name: bytes) -> Any:
    """A field of a raw RESP2 map reply ([name, value, ...])."""
    return flat[flat.index(name) + 1]


def read_command(keys: Keys, shard: int, count: int, cursor: bytes) -> tuple[Any, ...]:
    """XREADGROUP of one shard under its own consumer name, from `cursor` (b">": new entries)."""
    return (
        "XREADGROUP", "GROUP", keys.group, keys.consumer(shard),
        "COUNT", count, "STREAMS", keys.events(shard), cursor,
    )  # fmt: skip


def parse_read(reply: Any) -> list[RawEntry]:
    """A one-stream XREADGROUP reply, parsed here: (entry id, event or None if deleted).

    The clients' reply parsing for this command is switched off (`raw_reply`): redis-py turns
    each entry into a dict, which costs more per entry than everything else the source does.
    """
    if not reply:
        return []
    return [(entry_id, event_field(fields)) for entry_id, fields in reply[0][1]]


def event_field(fields: list[bytes] | None) -> bytes | None:
    """The `event` field of a raw stream entry ([field, value, ...]); `NO_EVENT_FIELD` if it
    has none, None if the entry was deleted."""
    if fields is None:
        return None
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"event":
            return fields[i + 1]
    return NO_EVENT_FIELD


def raw_reply(response: Any, **_options: Any) -> Any:
    """A response callback that leaves the reply as Redis sent it."""
    return response
