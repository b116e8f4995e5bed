"""Group commit of gateway batches: one atomic Lua script call for the writes of many requests.

Concurrent writes share script calls: each batch's ops are queued, and one task sends
everything queued as one script call (the ops of several batches side by side, every check
before any write), while each request waits on its own future: it is answered only once the call
holding its entries has returned. A stale index check fails the whole call with nothing
written; the batches of that call are then sent again one by one, so one batch's stale check
holds back no other. What the ops are and why markers follow their XADD: the script's comment.
"""

import asyncio
import hashlib
from typing import Final

import redis.asyncio
from msgspec import Struct
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

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


_COMMIT_B: Final = _COMMIT.encode()
_COMMIT_SHA_B: Final = hashlib.sha1(_COMMIT_B).hexdigest().encode()
_GROUP_MAX_OPS: Final = 4096  # ops per script call, at most (a batch is never split)


class _Queued(Struct):
    """One batch's part of a script call, and the future its writer waits on. (A Struct: one
    is made per request, ~0.1 µs, where a NamedTuple's Python-level `__new__` takes ~0.3.)"""

    keys: list[str]
    args: list[object]
    codes: str
    appends: int  # its 'A' ops: its slice of the call's flags
    done: "asyncio.Future[bytes | None]"


class GroupCommit:
    """Sends batches' ops (`run`) through shared calls of the commit script; one per Store."""

    def __init__(self, client: "redis.asyncio.Redis", *, ttl_s: int, parked_s: int) -> None:
        self._r = client
        self._ttl_s = ttl_s
        self._parked_s = parked_s
        self._queue: list[_Queued] = []
        self._sender: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None

    async def run(
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
        argv: list[object] = [self._ttl_s, self._parked_s, "".join(q.codes for q in group)]
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
        """The commit script by its SHA (Redis keeps it), by its text when Redis lacks it.

        On a connection of the pool's held between calls, the command packed here: the calls
        are one at a time (one sender task), and `execute_command`'s checkout, release and
        generic packing cost ~4 µs a request (measured) for nothing. As `execute_command` with
        the client's retry would, a lost connection is replaced and the call sent once more;
        that is safe because the script appends nothing twice (its markers).
        """
        for attempt in (1, 2):
            conn = self._conn
            if conn is None:
                conn = self._conn = await self._r.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                try:
                    await conn.send_packed_command(_pack(b"EVALSHA", _COMMIT_SHA_B, keys, argv))
                    return await conn.read_response()
                except NoScriptError:
                    await conn.send_packed_command(_pack(b"EVAL", _COMMIT_B, keys, argv))
                    return await conn.read_response()
            except ResponseError:
                raise  # a refusal (OOM, READONLY...): the connection itself is fine
            except BaseException as exc:
                self._conn = None
                await conn.disconnect()
                await self._r.connection_pool.release(conn)
                if attempt == 2 or not isinstance(exc, ConnectionError | TimeoutError):
                    raise
        raise AssertionError  # unreachable: the second attempt returns or raises


def _pack(command: bytes, script: bytes, keys: list[str], argv: list[object]) -> bytes:
    """`command script numkeys keys... argv...` in RESP, as redis-py would pack it (str as
    UTF-8, int in decimal, bytes as they are), in one buffer. Every part `$<length>` and the
    data, joined by CRLF once at the end: a `%`-format of each part cost ~1.5 µs a request (its
    keys, its event), the join and the heads of the usual lengths kept here, a third of it."""
    parts = [b"*%d" % (3 + len(keys) + len(argv))]
    append = parts.append
    heads = _HEADS
    for arg in (command, script, len(keys), *keys, *argv):
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            msg = f"gateway commit: cannot send a {type(arg).__name__} to Redis"
            raise TypeError(msg)
        size = len(data)
        append(heads[size] if size < _HEADS_KEPT else b"$%d" % size)
        append(data)
    append(b"")  # the CRLF after the last part
    return b"\r\n".join(parts)


_HEADS_KEPT: Final = 1024
_HEADS: Final = tuple(b"$%d" % size for size in range(_HEADS_KEPT))  # `$<length>` of a part
