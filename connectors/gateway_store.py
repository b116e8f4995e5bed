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
   chunk; it runs first thing at start and whenever a batch was spooled.
5. Concurrent writes share script calls (group commit): each batch's ops are queued, and one
   task sends everything queued as one script call (the ops of several batches side by side,
   every check before any write), while each request waits on its own future: it is answered
   only once the call holding its entries has returned. A stale index check fails the whole
   call with nothing written; the batches of that call are then sent again one by one.
"""

import asyncio
import builtins
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Final, Literal, NamedTuple

import anyio.to_thread
import msgspec
import redis.asyncio
from msgspec import Struct
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, NoScriptError, RedisError, TimeoutError
from redis.retry import Retry

from connectors import identity
from connectors.keys import Keys, shard_of
from connectors.redis_client import redacted, refusal
from connectors.spool import Spool, SpoolError
from operators.providers.common import Kind

log = logging.getLogger(__name__)

UNKNOWN_PROSPECT: Final = "unknown prospect"
_STALE_RETRIES: Final = 8
_DRAIN_CHUNK: Final = 64
_MAX_BACKOFF_S: Final = 2.0
_LOG_EVERY_S: Final = 30.0

# KEYS/ARGV per op, in order, one op code per character of ARGV[3]:
#   A (append)  KEYS marker, stream            ARGV event
#   C (check)   KEYS identity set              ARGV n, member...   (the set as resolved)
#   P (park)    KEYS identity set, park marker, parked list, dead stream
#               ARGV event, raw, address, provider
#   D (dead)    KEYS dead stream               ARGV raw, reason, provider
# ARGV[1] marker TTL (s), ARGV[2] parked-list TTL (s). Every check runs before any write: a set
# that moved since it was read returns -1 with nothing written. Markers are set after their
# XADD: a script that fails half-way leaves no marker for an event it did not append.
_COMMIT: Final = """
local ttl, park_ttl, codes = ARGV[1], ARGV[2], ARGV[3]
local k, a = 1, 4
for i = 1, #codes do
  local c = string.sub(codes, i, i)
  if c == 'A' then
    k, a = k + 2, a + 1
  elseif c == 'C' then
    local n = tonumber(ARGV[a])
    if redis.call('SCARD', KEYS[k]) ~= n then return -1 end
    for j = 1, n do
      if redis.call('SISMEMBER', KEYS[k], ARGV[a + j]) == 0 then return -1 end
    end
    k, a = k + 1, a + 1 + n
  elseif c == 'P' then
    if redis.call('SCARD', KEYS[k]) ~= 0 then return -1 end
    k, a = k + 4, a + 4
  else
    k, a = k + 1, a + 3
  end
end
k, a = 1, 4
local appended = {}
for i = 1, #codes do
  local c = string.sub(codes, i, i)
  if c == 'A' then
    if redis.call('EXISTS', KEYS[k]) == 0 then
      redis.call('XADD', KEYS[k + 1], '*', 'event', ARGV[a])
      redis.call('SET', KEYS[k], '1', 'EX', ttl)
      appended[#appended + 1] = '1'
    else
      appended[#appended + 1] = '0'
    end
    k, a = k + 2, a + 1
  elseif c == 'C' then
    k, a = k + 1, a + 1 + tonumber(ARGV[a])
  elseif c == 'P' then
    if redis.call('EXISTS', KEYS[k + 1]) == 0 then
      redis.call('RPUSH', KEYS[k + 2], ARGV[a])
      redis.call('EXPIRE', KEYS[k + 2], park_ttl)
      redis.call('XADD', KEYS[k + 3], '*', 'event', ARGV[a + 1], 'reason', 'unknown prospect',
                 'address', ARGV[a + 2], 'provider', ARGV[a + 3])
      redis.call('SET', KEYS[k + 1], '1', 'EX', ttl)
    end
    k, a = k + 4, a + 4
  else
    redis.call('XADD', KEYS[k], '*', 'event', ARGV[a], 'reason', ARGV[a + 1],
               'provider', ARGV[a + 2])
    k, a = k + 1, a + 3
  end
end
return '=' .. table.concat(appended)
"""


_COMMIT_SHA: Final = hashlib.sha1(_COMMIT.encode()).hexdigest()
_GROUP_MAX_OPS: Final = 4096  # ops per script call, at most (a batch is never split)


class _Queued(NamedTuple):
    """One batch's part of a script call, and the future its writer waits on."""

    keys: list[str]
    args: list[object]
    codes: str
    appends: int  # its 'A' ops: its slice of the call's flags
    done: "asyncio.Future[bytes | None]"


class Ready(Struct, array_like=True, frozen=True, gc=False):
    """A contract event for a known prospect."""

    prospect: str
    type: str
    event: bytes  # the event's JSON


class Pending(Struct, array_like=True, frozen=True, gc=False):
    """A contract event for whoever holds `address` (its JSON has `"prospect":""` first)."""

    kind: Kind
    address: str
    type: str
    event: bytes
    raw: bytes  # the provider's payload, for the dead letter if nobody does


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

    appended: Counter[str]
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
        self._spool = spool
        self._dedupe_s = dedupe_s
        self._parked_s = parked_s
        self._on_written = on_written
        self._wake = asyncio.Event()
        self._stopping = False
        self._queue: list[_Queued] = []
        self._sender: asyncio.Task[None] | None = None
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
        """Resolve and write `batch` in one script call; RedisAwayError if Redis is away."""
        try:
            for _ in range(_STALE_RETRIES):
                written = await self._try_write(batch)
                if written is not None:
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

    async def _try_write(self, batch: Batch) -> Written | None:
        keys: list[str] = []
        argv: list[object] = []
        codes: list[str] = []
        types: list[str] = []  # the type of each event to append, in order ('A' codes)
        unknown = 0
        for item in batch.ready:
            keys += [
                identity.marker_key(self._keys, item.prospect, _id(item.event)),
                self._stream(item.prospect),
            ]
            argv.append(item.event)
            codes.append("A")
            types.append(item.type)
        holders = await self._holders(batch.pending)
        for waiting in batch.pending:
            members = holders[(waiting.kind, waiting.address)]
            event_id = _id(waiting.event)
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
        for dead in batch.dead:
            keys.append(self._keys.dead)
            argv += [dead.raw, dead.reason, batch.provider]
            codes.append("D")
        if not codes:
            return Written(Counter(), 0, 0)
        flags = await self._run("".join(codes), keys, argv, len(types))
        if flags is None:
            return None
        # a flag per event: 1 appended now, 0 there already (a provider's retry).
        appended = Counter(kind for kind, flag in zip(types, flags, strict=True) if flag == 49)
        return Written(appended, unknown, len(batch.dead))

    async def _run(
        self, codes: str, keys: list[str], argv: list[object], appends: int
    ) -> bytes | None:
        """One batch's ops through the shared script calls: its flags (`1`/`0` per 'A' op) once
        the call holding them has returned; None if an index check failed (nothing written)."""
        done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(keys, argv, codes, appends, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_queued(), name="gateway-commit")
        return await done

    async def _send_queued(self) -> None:
        """Send what is queued, in as few script calls as the cap allows, until nothing is.
        A task of its own: a request that goes away cannot cancel the others' write."""
        try:
            while self._queue:
                ops = count = 0
                while count < len(self._queue) and (
                    count == 0 or ops + len(self._queue[count].codes) <= _GROUP_MAX_OPS
                ):
                    ops += len(self._queue[count].codes)
                    count += 1
                group = self._queue[:count]
                del self._queue[:count]
                await self._send(group)
        except BaseException as exc:  # cancelled at shutdown: nobody is left waiting for ever
            for queued in self._queue:
                if not queued.done.done():
                    queued.done.set_exception(exc)
            self._queue.clear()
            raise
        finally:
            self._sender = None

    async def _send(self, group: list[_Queued]) -> None:
        keys = [key for queued in group for key in queued.keys]
        argv: list[object] = [self._dedupe_s, self._parked_s, "".join(q.codes for q in group)]
        for queued in group:
            argv += queued.args
        try:
            result = await self._script(keys, argv)
        except BaseException as exc:
            for queued in group:
                if not queued.done.done():
                    queued.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if result == -1:
            if len(group) == 1:
                if not group[0].done.done():
                    group[0].done.set_result(None)
                return
            for queued in group:  # one batch's stale check must not hold back the others
                await self._send([queued])
            return
        # '=' then a flag per 'A' op of the whole call: each batch's, in the order sent.
        flags = result[1:] if isinstance(result, bytes) else str(result)[1:].encode()
        start = 0
        for queued in group:
            if not queued.done.done():
                queued.done.set_result(flags[start : start + queued.appends])
            start += queued.appends

    async def _script(self, keys: list[str], argv: list[object]) -> object:
        """The commit script by its SHA (Redis keeps it), by its text when Redis lacks it."""
        try:
            return await self._r.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", _COMMIT_SHA, len(keys), *keys, *argv
            )
        except NoScriptError:
            return await self._r.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", _COMMIT, len(keys), *keys, *argv
            )

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
        return self._keys.events(shard_of(prospect, self._keys.shards))

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
                if record.payload:
                    try:
                        batch = _BATCH_DECODER.decode(record.payload)
                    except msgspec.DecodeError:
                        log.error("gateway: unreadable spool record skipped")
                    else:
                        await self.write(batch)
                done = record.end
        finally:
            if done is not None:
                await anyio.to_thread.run_sync(self._spool.commit, done)
        if done is not None and not self._spool.pending():
            log.info("gateway: spool drained into Redis")
            self.problem = None


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
