"""Event source for live mode: one Bytewax partition per shard stream, read by a consumer group.

Each shard has exactly one consumer, named after the shard, so per-prospect order holds and, after
a restart or a rescale, the shard's new owner finds the shard's pending entries: it reads those
first (their effects may not have been checkpointed), then new ones. Entries pending with other
consumers (e.g. a crashed process of another naming) are claimed once idle (XAUTOCLAIM). The
source also wakes prospects whose deferred touches are due (a sorted set per shard), since after
a restart nothing else would load them. Position lives in Redis, so `snapshot()` returns nothing.

Stream time. Timers (deferrals, arbitration windows, sequence steps) fire when the shard's
stream has reached their due time, not the worker's clock, so a kill changes no decision: each
wake-up carries the shard's watermark, the time up to which every entry of the shard has been
handed on. While the shard is caught up (a read returned less than a full batch) that is the
time the read was sent, on Redis's clock (entry ids carry Redis's clock: `TIME` gives the offset
to the worker's); while it works through a backlog, the append time of the last entry handed.
Wake-ups follow the entries of the same read, so after a restart a timer due during the outage
fires after the entries that came before its due time, as in an uninterrupted run.

Poison entries. Bad input never raises (the decoder and the engine isolate each event), so an
entry that kills the process is rare: a crash of the interpreter itself, an OOM kill. Its
delivery count alone cannot name it: every entry in flight with it was delivered as often. So
the count only makes an entry a *suspect* (delivered more than `max_deliveries` times); a suspect
is handed to the flow alone, once every entry before it is acknowledged, with the worker's
other shards paused (other processes of a cluster pause too: the shard takes
`prefix:suspect-lock` half a second before it hands the suspect, and they look at the lock every
timer poll), and its id is written to `prefix:suspect:{shard}` first. If the process
dies then, the next start finds that key naming an entry still pending: that entry, and only
it, goes to the dead-letter stream. A suspect that is processed (acknowledged) was innocent: the
key is cleared and reading goes on. Entries claimed from other consumers are handed as they
are: once claimed they are this consumer's, and come back through its backlog if they kill it.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from connectors.keys import Keys
from connectors.new_entries import (
    NO_EVENT_FIELD,
    NewEntries,
    parse_read,
    raw_reply,
    read_command,
)
from connectors.redis_client import is_refusal

log = logging.getLogger(__name__)

# A source item: (shard, stream entry id, raw event bytes). A wake-up has the id
# b"wake:<stream time in ms>" and the prospect's id as bytes instead of an event.
Entry = tuple[int, bytes, bytes]
WAKE_PREFIX: Final = b"wake:"
# A tick: no input, only a turn of the decode step while the stream is quiet (it sweeps idle
# prospects out of memory; see `operators.residency`). One per timer poll.
TICK_ID: Final = b"tick"

# An empty read polls again after 2 ms, then after twice as long each time the stream stays
# quiet, up to 20 ms: a busy stream is read every 2 ms (trigger latency), an idle flow wakes ~50
# times a second instead of 500 (it cost ~15 % of a core doing nothing).
_IDLE_POLL_MS: Final = 2
_IDLE_POLL_MAX_MS: Final = 20
_SUSPECT_POLL: Final = timedelta(milliseconds=20)
# One suspect in a cluster at a time: its shard takes `suspect_lock` this long before handing it,
# so the other processes, which look at the lock every timer poll, pause first. The lock expires
# by itself should its holder's shard never come back.
_CLAIM_WAIT_S: Final = 0.5
_LOCK_TTL_S: Final = 600
_MAX_BACKOFF_S: Final = 2.0


@dataclass(frozen=True)
class SourceSettings:
    """How the source reads; all intervals in milliseconds."""

    batch_size: int = 128
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    claim_every_ms: int = 10_000
    timers_every_ms: int = 250
    ticks: bool = False  # a `TICK_ID` item per timer poll, for steps that act while quiet
    # A quiet worker alone in its cluster waits this long in Redis for new entries instead of
    # polling on a grid (0: always poll; see `connectors.new_entries`).
    block_ms: int = 0


class _ShardPartition(StatefulSourcePartition[Entry, None]):
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        shard: int,
        settings: SourceSettings,
        stopping: Callable[[], bool],
        new_entries: NewEntries,
    ) -> None:
        # redis-py types replies as unions over every protocol/decoding mode; this client always
        # returns RESP2 bytes, so its replies are handled as plain data.
        self._r: Any = client
        self._keys = keys
        self._shard = shard
        self._stream = keys.events(shard)
        self._consumer = keys.consumer(shard)
        self._settings = settings
        self._stopping = stopping
        self._backlog_cursor: bytes | None = b"0"  # own pending entries first
        self._handed = b"0"  # id of the last entry read for the flow (backlog or new)
        self._next_claim = 0.0
        self._next_timers = 0.0
        self._awake: datetime | None = None
        self._idle_ms = 0  # the current wait after an empty read (see `_IDLE_POLL_MS`)
        self._quiet = True  # the last read found no input (wake-ups and ticks are not input)
        self._backoff = 0.0
        self._new = new_entries
        new_entries.attach()
        ensure_group(client, self._stream, keys.group)
        # A suspect this shard handed alone before the process died (see the module doc).
        blamed = client.get(keys.suspect(shard))
        self._blamed = blamed if isinstance(blamed, bytes) else None
        self._suspect: tuple[bytes, bytes | None] | None = None
        self._suspect_handed = False
        self._claimed_at: float | None = None
        self._foreign_suspect = False
        self._release_lock()  # a lock this shard held when its process died

    def next_batch(self) -> list[Entry]:
        if self._stopping():
            raise StopIteration
        try:
            batch = self._read()
        except (ConnectionError, TimeoutError, OSError) as exc:
            return self._unavailable(exc)
        except ResponseError as exc:
            if is_refusal(exc):  # READONLY after a failover, LOADING, ...: an outage too
                return self._unavailable(exc)
            if "NOGROUP" not in str(exc):
                raise
            ensure_group(self._r, self._stream, self._keys.group)  # Redis lost its data
            self._backlog_cursor = self._handed = b"0"
            self._new.leave(self._shard)
            return []
        self._backoff = 0.0
        if self._quiet is False:  # input was read: poll again at once
            self._awake = None
            self._idle_ms = 0
        elif self._awake is None and not self._new.waits:  # waiting in Redis needs no grid
            # (wake-ups and ticks alone do not count as input; a suspect's poll is kept)
            self._idle_ms = min(_IDLE_POLL_MAX_MS, max(_IDLE_POLL_MS, self._idle_ms * 2))
            self._awake = _on_grid(self._idle_ms)
        return batch

    def _unavailable(self, exc: Exception) -> list[Entry]:
        """Redis is away or refuses us: back off. A read's reply may be lost after Redis
        delivered its entries: those are now in this consumer's pending list, after the last
        entry handed on, so reading resumes from there."""
        self._backlog_cursor = self._handed
        self._new.leave(self._shard)
        self._backoff = min(_MAX_BACKOFF_S, max(0.05, self._backoff * 2))
        log.warning("shard %d: Redis unavailable (%s); retrying", self._shard, exc)
        self._awake = datetime.now(UTC) + timedelta(seconds=self._backoff)
        return []

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._new.detach(self._shard)
        self._r.close()

    # -- reading ------------------------------------------------------------------------------

    def _read(self) -> list[Entry]:
        self._awake = None
        self._quiet = True
        if self._suspect is not None:
            return self._hand_suspect()
        if self._new.suspect_shard is not None:  # another shard's suspect is alone in flight
            self._awake = datetime.now(UTC) + _SUSPECT_POLL
            return []
        now = time.monotonic()
        if now >= self._next_timers:  # a suspect claimed by another process: pause too
            holder = self._r.get(self._keys.suspect_lock)
            self._foreign_suspect = holder is not None and holder != b"%d" % self._shard
        if self._foreign_suspect:
            self._next_timers = now + self._settings.timers_every_ms / 1000
            self._awake = datetime.now(UTC) + _SUSPECT_POLL
            return []
        if self._backlog_cursor is not None:
            out = self._read_backlog()
            if self._suspect is not None:
                return out  # a suspect goes alone: nothing else in its batch
            self._quiet = not out
            watermark = _entry_ms(self._handed)  # not caught up: as far as handed on
        else:
            out = []
            if now >= self._next_claim:
                self._next_claim = now + self._settings.claim_every_ms / 1000
                out += self._claim_idle()
            raw, sent_at = self._new.take(self._shard)
            if raw:
                self._handed = raw[-1][0]
                self._quiet = False
            out += self._entries(raw)
            caught_up = len(raw) < self._settings.batch_size
            watermark = sent_at if caught_up else _entry_ms(self._handed)
        if now >= self._next_timers:
            self._next_timers = now + self._settings.timers_every_ms / 1000
            out += self._due_wakeups(watermark)
            if self._settings.ticks:
                out.append((self._shard, TICK_ID, b""))
        return out

    def _xreadgroup(self, cursor: bytes) -> list[tuple[bytes, bytes | None]]:
        command = read_command(self._keys, self._shard, self._settings.batch_size, cursor)
        return parse_read(self._r.execute_command(*command))

    def _read_backlog(self) -> list[Entry]:
        """Entries delivered to this shard's consumer before but never acknowledged."""
        assert self._backlog_cursor is not None
        raw = self._xreadgroup(self._backlog_cursor)
        if not raw:
            self._backlog_cursor = None
            self._new.join(self._shard)
            if self._blamed is not None:  # it was acknowledged after all
                self._r.delete(self._keys.suspect(self._shard))
                self._blamed = None
            return []
        keep = self._screen(raw)
        self._backlog_cursor = self._handed = keep[-1][0] if keep else self._backlog_cursor
        if self._suspect is not None and not keep:
            return self._hand_suspect()
        return self._entries(keep)

    def _claim_idle(self) -> list[Entry]:
        """Entries stuck with consumers that are gone (idle longer than `claim_idle_ms`)."""
        resp = self._r.xautoclaim(
            self._stream,
            self._keys.group,
            self._consumer,
            min_idle_time=self._settings.claim_idle_ms,
            start_id="0-0",
            count=self._settings.batch_size,
        )
        claimed = [(e[0], e[1].get(b"event", NO_EVENT_FIELD)) for e in resp[1] if e and e[1]]
        return self._entries(claimed)

    def _screen(self, raw: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
        """The backlog entries to hand on now: those before the first suspect. The blamed
        entry goes to the dead letters; a suspect waits to be handed alone (module doc)."""
        first, last = raw[0][0], raw[-1][0]
        pending = self._r.xpending_range(
            self._stream,
            self._keys.group,
            min=first,
            max=last,
            count=len(raw) * 2,
            consumername=self._consumer,
        )
        tries = {p["message_id"]: p["times_delivered"] for p in pending}
        limit = self._settings.max_deliveries
        keep: list[tuple[bytes, bytes | None]] = []
        for entry_id, event in raw:
            delivered = int(tries.get(entry_id, 1))
            if entry_id == self._blamed:
                reason = (
                    f"the process died while processing this entry alone (delivered "
                    f"{delivered} times); poison entry"
                )
                self._dead(entry_id, event or b"", reason)
                self._r.delete(self._keys.suspect(self._shard))
                self._blamed = None
            elif delivered > limit:
                self._suspect, self._suspect_handed = (entry_id, event), False
                break
            else:
                keep.append((entry_id, event))
        return keep

    def _release_lock(self) -> None:
        if self._r.get(self._keys.suspect_lock) == b"%d" % self._shard:
            self._r.delete(self._keys.suspect_lock)

    def _hand_suspect(self) -> list[Entry]:
        """Hand the suspect alone once everything before it is acknowledged; then wait for it
        to be acknowledged too, and read on."""
        assert self._suspect is not None
        entry_id, event = self._suspect
        self._awake = datetime.now(UTC) + _SUSPECT_POLL
        oldest = self._r.xpending_range(
            self._stream, self._keys.group, "-", "+", 1, consumername=self._consumer
        )
        oldest_id = oldest[0]["message_id"] if oldest else None
        if not self._suspect_handed:
            if oldest_id != entry_id or self._new.suspect_shard not in (None, self._shard):
                return []  # entries before it still in flight, or another suspect alone
            self._new.suspect_shard = self._shard
            if self._claimed_at is None:  # one suspect in the whole cluster at a time
                lock = self._keys.suspect_lock
                if not self._r.set(lock, self._shard, nx=True, ex=_LOCK_TTL_S):
                    return []  # another process's suspect: wait for it
                self._claimed_at = time.monotonic()
            if time.monotonic() - self._claimed_at < _CLAIM_WAIT_S:
                return []  # the other processes see the lock and finish what they handed
            self._r.set(self._keys.suspect(self._shard), entry_id)  # now it alone is in flight
            self._suspect_handed = True
            self._backlog_cursor = self._handed = entry_id
            log.warning("shard %d: entry %s handed alone (delivered often)", self._shard, entry_id)
            return self._entries([(entry_id, event)])
        if oldest_id == entry_id:
            return []  # still in flight
        self._r.delete(self._keys.suspect(self._shard))
        self._release_lock()
        self._suspect = None
        self._claimed_at = None
        self._new.suspect_shard = None
        self._awake = None
        return []

    def _dead(self, entry_id: bytes, raw: bytes, reason: str) -> None:
        fields = {"event": raw, "reason": reason, "shard": self._shard, "entry": entry_id}
        with self._r.pipeline(transaction=True) as pipe:
            pipe.xadd(self._keys.dead, fields)
            pipe.xack(self._stream, self._keys.group, entry_id)
            pipe.execute()
        log.warning("shard %d: entry %s moved to dead letters: %s", self._shard, entry_id, reason)

    def _entries(self, raw: list[tuple[bytes, bytes | None]]) -> list[Entry]:
        """Source items. An entry deleted from the stream while pending has no event: it is
        acknowledged and skipped; one without an `event` field goes to the dead letters."""
        shard = self._shard
        out = []
        gone = []
        for entry_id, event in raw:
            if event is NO_EVENT_FIELD:
                self._dead(entry_id, b"", "missing field `event`")
            elif event is None:
                gone.append(entry_id)
            else:
                out.append((shard, entry_id, event))
        if gone:  # deleted while pending: nothing to process, and pending would pin trimming
            self._r.xack(self._stream, self._keys.group, *gone)
        return out

    def _due_wakeups(self, watermark: int) -> list[Entry]:
        """Wake-ups for the shard's prospects with a timer due by its stream time."""
        due = self._r.zrangebyscore(self._keys.timers(self._shard), "-inf", watermark, 0, 10_000)
        wake = WAKE_PREFIX + b"%d" % watermark
        return [(self._shard, wake, prospect) for prospect in due]


def _on_grid(every_ms: int) -> datetime:
    """The next multiple of `every_ms` on the wall clock: a worker's quiet partitions all wake
    at the same instant, so Bytewax's loop wakes once per interval, not once per partition."""
    now_us = time.time_ns() // 1_000
    step = every_ms * 1_000
    return datetime.fromtimestamp((now_us // step + 1) * step / 1e6, UTC)


def _entry_ms(entry_id: bytes) -> int:
    """A stream entry id starts with Redis's time in ms when it was added (b"0": nothing)."""
    return int(entry_id.split(b"-", 1)[0])


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing; reading starts at the beginning."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class RedisEventSource(FixedPartitionedSource[Entry, None]):
    """All shard streams `prefix:events:{n}`, one partition each."""

    def __init__(
        self,
        make_client: Callable[[], redis.Redis],
        keys: Keys,
        settings: SourceSettings | None = None,
        stopping: Callable[[], bool] = lambda: False,
        make_reader_client: Callable[[], redis.Redis] | None = None,
    ) -> None:
        """`make_reader_client`: for the shared reads of new entries, a client that does not
        retry by itself (default: `make_client`)."""
        self._make_client = make_client
        self._make_reader_client = make_reader_client or make_client
        self._keys = keys
        self._settings = settings or SourceSettings()
        self._stopping = stopping
        self._readers: dict[int, NewEntries] = {}

    def list_parts(self) -> list[str]:
        return [str(n) for n in range(self._keys.shards)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ShardPartition:
        new_entries = self._readers.get(threading.get_ident())  # one per worker thread
        if new_entries is None:
            reader = self._make_reader_client()
            reader.set_response_callback("XREADGROUP", raw_reply)
            reader.set_response_callback("XREAD", raw_reply)
            settings = self._settings
            new_entries = NewEntries(
                reader, self._keys, settings.batch_size, block_ms=settings.block_ms
            )
            self._readers[threading.get_ident()] = new_entries
        return _ShardPartition(
            self._client(), self._keys, int(for_part), self._settings, self._stopping, new_entries
        )

    def _client(self) -> redis.Redis:
        client = self._make_client()
        client.set_response_callback("XREADGROUP", raw_reply)  # parsed by `_parse_read`
        return client
