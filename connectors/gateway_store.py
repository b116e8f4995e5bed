"""Where a gateway request's events go: Redis in one atomic script, or the spool while it is away.

The invariant: a request is answered 2xx only once every entry it produced is durable.

1. A request becomes one `Batch`: events whose prospect is known (`Ready`), events to resolve
   through the identity index (`Pending`: address, event with an empty prospect, raw payload),
   and dead letters.
2. While the spool is empty, the batch is written to Redis: one pipelined read of the identity
   sets it needs, then one Lua script (atomic, like MULTI) that re-checks those sets, appends
   each event once per prospect (a marker per event id and prospect, set after its XADD, so a
   provider's retry or a re-drained spool record appends nothing twice), parks and dead-letters
   the events of unknown addresses, and writes the other dead letters. If the index changed in
   between (`index_profiles` ran), the script writes nothing and the batch is resolved again.
3. If Redis is away (connection refused or lost, a timeout, or a refusal such as OOM or
   READONLY), the batch is appended to the spool and fsynced instead (`connectors/spool.py`);
   only if that fails is the answer 503. While the spool holds anything, new batches queue
   behind it, so events reach the streams in the order they were accepted.
4. The drain writes spooled batches to Redis in order (2), and commits its position after each
   chunk; it runs first thing at start and whenever a batch was spooled. Spooled bytes that are
   no intact record (a damaged disk) and records that no longer decode go to the dead-letter
   stream (provider `spool`) with the bytes and the reason; the records after them drain on.
5. Concurrent writes share script calls (group commit, `connectors/gateway_commit.py`): a
   request is answered only once the call holding its entries has returned.
"""

import asyncio
import builtins
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final, Literal

import anyio.to_thread
import msgspec
import redis.asyncio
from msgspec import Struct
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError
from redis.retry import Retry

from connectors import identity
from connectors.gateway_commit import GroupCommit
from connectors.keys import Keys, shard_of
from connectors.redis_client import redacted, refusal
from connectors.spool import Record, Spool, SpoolError
from operators.providers.common import Kind

log = logging.getLogger(__name__)

UNKNOWN_PROSPECT: Final = "unknown prospect"
_STALE_RETRIES: Final = 8
_DRAIN_CHUNK: Final = 64
_MAX_BACKOFF_S: Final = 2.0
_LOG_EVERY_S: Final = 30.0


# `event_id`, last in `Ready` and `Pending`: the `id` in `event`, when the batch's maker had it
# at hand (a provider event's draft), so the write does not decode the JSON again to find it
# (~0.5 µs an event); empty: decode it (a first-party line, or a record spooled before there
# was the field: a record of the array without it decodes with the default, and a version
# without the field reads the array's first elements and ignores the rest).


class Ready(Struct, array_like=True, frozen=True, gc=False):
    """A contract event for a known prospect."""

    prospect: str
    type: str
    event: bytes  # the event's JSON
    event_id: str = ""  # its `id`, or empty (see above)


class Pending(Struct, array_like=True, frozen=True, gc=False):
    """A contract event for whoever holds `address` (its JSON has `"prospect":""` first)."""

    kind: Kind
    address: str
    type: str
    event: bytes
    raw: bytes  # the provider's payload, for the dead letter if nobody does
    event_id: str = ""  # the event's `id`, or empty (see above)


class Dead(Struct, array_like=True, frozen=True, gc=False):
    raw: bytes
    reason: str


class Batch(Struct, array_like=True, frozen=True, gc=False):
    """Everything one request produced; written whole, or spooled whole."""

    provider: str
    ready: list[Ready] = []
    pending: list[Pending] = []
    dead: list[Dead] = []


class Written(Struct, frozen=True, gc=False):
    """What a batch became in Redis: events on streams (by type), unknown addresses, dead."""

    appended: dict[str, int]
    unknown: int
    dead: int


class Outcome(Struct, frozen=True, gc=False):
    """The answer's counts: written now, or accepted into the spool (`spooled`)."""

    appended: int
    dead: int
    spooled: bool


class RedisAwayError(Exception):
    """Redis cannot take the write now: connection, timeout, or a refusal (OOM, READONLY...)."""


_BATCH_ENCODER: Final = msgspec.json.Encoder()
_BATCH_DECODER: Final = msgspec.json.Decoder(Batch)
Via = Literal["redis", "spool"]


def async_client(url: str) -> "redis.asyncio.Redis":
    """A client that fails fast: a request must not wait on a dead Redis longer than a provider
    waits for its answer (Twilio: 15 s), when the spool can take the events at once."""
    return redis.asyncio.Redis.from_url(
        url,
        protocol=2,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
        retry_on_error=[ConnectionError, TimeoutError],
        health_check_interval=30,
    )


class Store:
    """Writes batches durably (see the module docstring); one per gateway process."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        keys: Keys,
        spool: Spool,
        *,
        dedupe_s: int,
        parked_s: int,
        on_written: Callable[[Batch, Written], None] = lambda batch, written: None,
    ) -> None:
        self._r = client
        self._keys = keys
        self._streams = [keys.events(shard) for shard in range(keys.shards)]  # by shard
        self._spool = spool
        self._on_written = on_written
        self._wake = asyncio.Event()
        self._stopping = False
        self._group = GroupCommit(client, ttl_s=dedupe_s, parked_s=parked_s)
        self.problem: str | None = None  # why the last write went to the spool, if it did
        self.spool_broken: str | None = None

    @property
    def spooling(self) -> bool:
        return self._spool.pending()

    async def commit(self, batch: Batch) -> Outcome:
        """Make `batch` durable; SpoolError (a 503) only when neither Redis nor the spool can."""
        if not self._spool.pending():
            try:
                written = await self.write(batch)
            except RedisAwayError as exc:
                self._report(str(exc))
            else:
                self.problem = None
                dead = len(batch.dead) + written.unknown
                return Outcome(sum(written.appended.values()), dead, spooled=False)
        payload = _BATCH_ENCODER.encode(batch)
        try:
            await anyio.to_thread.run_sync(self._spool.append, payload)
        except SpoolError as exc:
            self.spool_broken = str(exc)
            log.error("gateway: %s; answering 503", exc)
            raise
        self.spool_broken = None
        self._wake.set()
        return Outcome(len(batch.ready) + len(batch.pending), len(batch.dead), spooled=True)

    async def write(self, batch: Batch) -> Written:
        """Resolve and write `batch` in one script call; RedisAwayError if Redis is away. The
        attempts (again when an identity set moved since it was read) in this one coroutine:
        a level of coroutine more cost ~0.2 µs a request."""
        try:
            for _ in range(_STALE_RETRIES):
                keys: list[str] = []
                argv: list[object] = []
                codes: list[str] = []
                types: list[str] = []  # the type of each event to append, in order ('A' codes)
                unknown = 0
                for item in batch.ready:
                    event_id = item.event_id or _id(item.event)
                    keys += [
                        identity.marker_key(self._keys, item.prospect, event_id),
                        self._stream(item.prospect),
                    ]
                    argv.append(item.event)
                    codes.append("A")
                    types.append(item.type)
                if batch.pending:
                    unknown = await self._resolve(batch, keys, argv, codes, types)
                for dead in batch.dead:
                    keys.append(self._keys.dead)
                    argv += [dead.raw, dead.reason, batch.provider]
                    codes.append("D")
                if not codes:
                    written = Written({}, 0, 0)
                else:
                    flags = await self._group.run("".join(codes), keys, argv, len(types))
                    if flags is None:  # an identity set moved: nothing written, resolve again
                        continue
                    # a flag per event: 1 appended now, 0 there already (a provider's retry).
                    appended: dict[str, int] = {}
                    for kind, flag in zip(types, flags, strict=True):
                        if flag == 49:
                            appended[kind] = appended.get(kind, 0) + 1
                    written = Written(appended, unknown, len(batch.dead))
                self._on_written(batch, written)
                return written
        except (RedisError, OSError) as exc:
            why = refusal(exc)
            if why is None and not isinstance(exc, ConnectionError | TimeoutError | OSError):
                raise
            reason = f"Redis refuses writes: {why}" if why else f"Redis unavailable: {exc}"
            raise RedisAwayError(redacted(reason)) from None
        msg = "the identity index kept changing under the write"
        raise RuntimeError(msg)

    async def _resolve(
        self,
        batch: Batch,
        keys: list[str],
        argv: list[object],
        codes: list[str],
        types: list[str],
    ) -> int:
        """The ops of `batch.pending` (each event's address as the index holds it now), added
        to the lists; how many addresses nobody holds."""
        holders = await self._holders(batch.pending)
        unknown = 0
        for waiting in batch.pending:
            members = holders[(waiting.kind, waiting.address)]
            event_id = waiting.event_id or _id(waiting.event)
            ident = identity.identity_key(self._keys, waiting.kind, waiting.address)
            if not members:
                keys += [
                    ident,
                    identity.park_marker_key(self._keys, waiting.kind, waiting.address, event_id),
                    identity.parked_key(self._keys, waiting.kind, waiting.address),
                    self._keys.dead,
                ]
                argv += [waiting.event, waiting.raw, waiting.address, batch.provider]
                codes.append("P")
                unknown += 1
                continue
            keys.append(ident)
            argv += [len(members), *members]
            codes.append("C")
            for prospect in members:
                keys += [
                    identity.marker_key(self._keys, prospect, event_id),
                    self._stream(prospect),
                ]
                argv.append(_with_prospect(waiting.event, prospect))
                codes.append("A")
                types.append(waiting.type)
        return unknown

    async def _holders(self, pending: list[Pending]) -> dict[tuple[str, str], list[str]]:
        wanted = list(dict.fromkeys((p.kind, p.address) for p in pending))
        if not wanted:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for kind, address in wanted:
                pipe.smembers(identity.identity_key(self._keys, kind, address))
            found = await pipe.execute()
        return {
            key: sorted(m.decode() for m in members)
            for key, members in zip(wanted, found, strict=True)
        }

    def _stream(self, prospect: str) -> str:
        return self._streams[shard_of(prospect, self._keys.shards)]

    def _report(self, reason: str) -> None:
        if self.problem is None:
            log.warning("gateway: %s; spooling requests until it is back", reason)
        self.problem = reason

    async def drain_forever(self) -> None:
        """Drain the spool into Redis in order, whenever it holds anything, until `stop()`.

        Stopped by a flag rather than by cancelling the task, so a write in flight finishes
        (and its position is committed) before the process goes.
        """
        backoff = 0.05
        logged_at = 0.0
        while not self._stopping:
            if not self._spool.pending():
                await anyio.to_thread.run_sync(self._spool.finish_if_drained)
                self._wake.clear()
                if not self._spool.pending():
                    await self._pause(1.0)
                    continue
            try:
                await self._drain_chunk()
            except RedisAwayError as exc:
                now = time.monotonic()
                if now - logged_at >= _LOG_EVERY_S:
                    log.warning("gateway: spool waits: %s", exc)
                    logged_at = now
                self.problem = str(exc)
                await self._pause(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)
            except Exception:
                log.exception("gateway: the spool drain failed; retrying")
                await self._pause(_MAX_BACKOFF_S)
            else:
                backoff = 0.05

    def stop(self) -> None:
        """Make `drain_forever` return after the write in flight, if any."""
        self._stopping = True
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds`; a spooled batch or `stop()` ends it early."""
        with contextlib.suppress(builtins.TimeoutError):  # not redis's TimeoutError
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _drain_chunk(self) -> None:
        records = await anyio.to_thread.run_sync(self._spool.read, _DRAIN_CHUNK)
        done = None
        try:
            for record in records:
                batch = _spooled_batch(record)
                if batch is not None:
                    await self.write(batch)
                done = record.end
        finally:
            if done is not None:
                await anyio.to_thread.run_sync(self._spool.commit, done)
        if done is not None and not self._spool.pending():
            log.info("gateway: spool drained into Redis")
            self.problem = None


SPOOL_PROVIDER: Final = "spool"


def _spooled_batch(record: Record) -> Batch | None:
    """What to write for one spool record: its batch; or, for damaged bytes or a record that no
    longer decodes, a dead letter with the bytes and why (an operator can still read the
    events out of them); None for a record that is only a position."""
    where = f"{record.start.segment}:{record.start.offset}"
    if record.kind == "skip":
        return None
    if record.kind == "damaged":
        cut = "" if record.size == len(record.payload) else f", first {len(record.payload)} kept"
        reason = f"damaged spool record: {record.size} bytes at {where} fail its checks{cut}"
        return Batch(SPOOL_PROVIDER, dead=[Dead(record.payload, reason)])
    try:
        return _BATCH_DECODER.decode(record.payload)
    except msgspec.DecodeError as exc:
        log.error("gateway: spool record at %s does not decode (%s); dead-lettered", where, exc)
        reason = f"unreadable spool record at {where}: {exc}"
        return Batch(SPOOL_PROVIDER, dead=[Dead(record.payload, reason)])


def _id(event: bytes) -> str:
    """The `id` of an event this gateway encoded (every one has a string id)."""
    found = msgspec.json.decode(event, type=_IdOnly)
    return found.id


class _IdOnly(Struct, gc=False):
    id: str


def _with_prospect(event: bytes, prospect: str) -> bytes:
    """A parked-form event (`{"prospect":""...`) with the prospect filled in."""
    head = b'{"prospect":' + msgspec.json.encode(prospect)
    return head + event[len(identity.PARKED_PREFIX) :]
