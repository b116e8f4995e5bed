"""`touchflow publish`: append a JSON Lines file's events to the right event streams.

For tests, demos and back-fills. Producers must shard by the contract's formula so each
prospect's events stay in order; this does, and never loses a line (a line without a readable
prospect goes to shard 0, where the flow dead-letters it).
"""

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import redis

from connectors.keys import prospect_of, shard_of
from connectors.redis_client import RedisUnavailableError, connect, redacted, refusal
from connectors.shard_count import claim_shards
from dataflows.live import keys_for
from operators.policy import Policy

# Events per transaction, and how long a Redis refusing writes is waited for.
_PUBLISH_BATCH: Final = 1000
PUBLISH_GIVE_UP_S: Final = 60.0


def publish(
    path: Path,
    policy: Policy,
    url: str | None,
    *,
    give_up_after_s: float = PUBLISH_GIVE_UP_S,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Append each line of a JSON Lines file to its prospect's shard stream; returns the count.

    A line whose prospect cannot be read still goes out (to shard 0), where the flow rejects it
    to the dead-letter stream: publishing never loses a line. Lines go out in transactions of
    `_PUBLISH_BATCH`, all or nothing, so a batch Redis refuses (out of memory, read-only) is
    retried whole, for up to `give_up_after_s` seconds, without writing part of it twice or out
    of order; `warn` (default: a line on stderr) hears when that starts and ends. Giving up, or
    any other Redis failure, is a `RedisUnavailableError` saying how many lines went out.
    """
    keys = keys_for(policy)
    target = url or os.environ.get("REDIS_URL")
    if target is None:
        msg = "publish needs --redis URL or REDIS_URL (the Redis that `touchflow run` uses)"
        raise ValueError(msg)
    if give_up_after_s < 0:
        msg = f"publish: the time to give up after must be 0 s or more, not {give_up_after_s}"
        raise ValueError(msg)
    r = connect(target)
    count = 0
    batch: list[tuple[str, bytes]] = []
    try:
        claim_shards(r, keys)
        with path.open("rb") as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                batch.append((keys.events(_shard_for(line, keys.shards)), line))
                if len(batch) == _PUBLISH_BATCH:
                    _append(r, batch, give_up_after_s, warn or _warn, count)
                    count += len(batch)
                    batch = []
            if batch:
                _append(r, batch, give_up_after_s, warn or _warn, count)
                count += len(batch)
    except redis.RedisError as exc:
        msg = f"Redis failed after {count} events were published, the rest not: "
        msg += redacted(refusal(exc) or f"{type(exc).__name__}: {exc}")
        raise RedisUnavailableError(msg) from None
    finally:
        r.close()
    return count


def _append(
    r: redis.Redis,
    batch: list[tuple[str, bytes]],
    give_up_after_s: float,
    warn: Callable[[str], None],
    published: int,
) -> None:
    """XADD a batch in one MULTI; wait out a refusal for up to `give_up_after_s` seconds."""
    first_refusal: float | None = None
    backoff = 0.05
    while True:
        pipe = r.pipeline(transaction=True)
        for stream, line in batch:
            pipe.xadd(stream, {"event": line})
        try:
            pipe.execute()
        except redis.RedisError as exc:
            why = refusal(exc)
            if why is None:
                raise
            now = time.monotonic()
            if first_refusal is None:
                first_refusal = now
                warn(f"Redis refuses writes ({why}); retrying for up to {give_up_after_s:g} s")
            waited = now - first_refusal
            if waited >= give_up_after_s:
                msg = (
                    f"Redis still refuses writes after {waited:.0f} s ({why}); gave up with "
                    f"{published} events published, the rest not"
                )
                raise RedisUnavailableError(msg) from None
            time.sleep(min(backoff, give_up_after_s - waited))
            backoff = min(2.0, backoff * 2)
        else:
            if first_refusal is not None:
                waited = time.monotonic() - first_refusal
                warn(f"Redis accepts writes again after {waited:.1f} s; publishing on")
            return


def _warn(text: str) -> None:
    print(f"touchflow: {text}", file=sys.stderr, flush=True)


def _shard_for(line: bytes, shards: int) -> int:
    prospect = prospect_of(line)
    return shard_of(prospect, shards) if prospect is not None else 0
