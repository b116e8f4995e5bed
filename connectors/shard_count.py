"""The shard count is part of the data: once streams exist under a prefix, it may not change.

Events, pending entries and wake-up timers live in per-shard keys, and producers pick a shard from
the count. Run or publish with another count and prospects move to other shards: the old shards'
entries and timers would never be read, and a prospect's events could be handled out of order.
So the first `run` or `publish` records the count in `<prefix>:shards`, and another one stops at
start with one line naming `streams.shards`.
"""

import logging
from typing import NoReturn

import redis
from redis.exceptions import NoPermissionError, RedisError

from connectors.keys import Keys, prospect_of, shard_of
from connectors.redis_client import RedisUnavailableError, refusal
from operators.errors import ConfigError

log = logging.getLogger(__name__)

_MAX_SHARDS = 1024  # the config's bound on streams.shards


def claim_shards(r: redis.Redis, keys: Keys) -> None:
    """Record `keys.shards` under the prefix on first use; refuse a different count later.

    Streams written before the count was recorded (an upgrade) are checked too: a stream beyond
    the new count, or a newest entry whose prospect belongs to another shard, means another count.
    Without permission on the key (a tight ACL) the check is skipped with a warning.
    """
    try:
        recorded = r.get(keys.shard_count)
        if recorded is None:
            _check_existing_streams(r, keys)
            r.set(keys.shard_count, keys.shards, nx=True)
            recorded = r.get(keys.shard_count)
    except NoPermissionError:
        log.warning(
            "no permission on %s: not checking that streams.shards (%d) is the count the streams "
            "were written with; keep it the same on every run and publish",
            keys.shard_count,
            keys.shards,
        )
        return
    except RedisError as exc:
        if refusal(exc) is not None:
            raise  # not now (read-only, loading, out of memory): the caller may wait it out
        msg = f"Redis failed while reading {keys.shard_count}: {type(exc).__name__}: {exc}"
        raise RedisUnavailableError(msg) from None
    if recorded is None:  # deleted between our SET and GET: nothing to compare with
        return
    try:
        count = int(recorded)
    except ValueError:
        msg = f"{keys.shard_count} holds {recorded!r}, not a shard count; delete it or fix it"
        raise ConfigError(msg) from None
    if count != keys.shards:
        _refuse(keys, f"are split {count} ways ({keys.shard_count})", back_to=count)


def _check_existing_streams(r: redis.Redis, keys: Keys) -> None:
    """Streams from before the count was recorded must fit `keys.shards`."""
    beyond = [keys.events(n) for n in range(keys.shards, _MAX_SHARDS)]
    if beyond and int(r.exists(*beyond)) > 0:
        _refuse(keys, f"include shards numbered {keys.shards} or more", back_to=None)
    pipe = r.pipeline(transaction=False)
    for n in range(keys.shards):
        pipe.xrevrange(keys.events(n), count=1)
    for n, newest in enumerate(pipe.execute()):
        prospect = prospect_of(newest[0][1].get(b"event", b"")) if newest else None
        if prospect is not None and shard_of(prospect, keys.shards) != n:
            _refuse(keys, f"hold on shard {n} a prospect of another shard", back_to=None)


def _refuse(keys: Keys, how: str, back_to: int | None) -> NoReturn:
    fix = f"set streams.shards back to {back_to}" if back_to else "set it back to their count"
    msg = (
        f"streams.shards is {keys.shards}, but the streams under prefix {keys.prefix!r} in this "
        f"Redis {how}; {fix}: another count would strand the old shards' entries and timers "
        f"(to reshard on purpose, drain every stream and timer set, then delete {keys.shard_count})"
    )
    raise ConfigError(msg)
