"""The dataflow live on Redis streams: the same flow as replay, with Redis connectors.

The processes that run it (one, N supervised, or one per host of a cluster) are
`dataflows.supervisor`'s; `touchflow publish` is `dataflows.publish`. A stop (SIGINT/SIGTERM,
`_STOP`) makes the sources end, so the flow finishes and every sink writes a final checkpoint.
A Redis that refuses writes (out of memory, read-only) is an outage, not a crash: the sinks wait
and retry, and `/healthz` says why meanwhile.
"""

import logging
import threading
import time
from typing import Any, Final, cast

import redis

from connectors.checkpoint import StateStore
from connectors.dead_letters import DeadLetterSink
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import client
from connectors.redis_sink import CommitSink
from connectors.redis_source import Entry, RedisEventSource, SourceSettings
from connectors.trim import trim_events, trim_outputs
from dataflows.live_logic import Evict, LiveProspectLogic, Wake
from dataflows.outreach import LiveDecoded, build_flow, decode_live_batch
from operators.engine import Engine
from operators.events import Event, event_type
from operators.intake import EventReader
from operators.policy import Policy
from operators.residency import Residency
from operators.scorecard import Tally

log = logging.getLogger("touchflow")

_STOP = threading.Event()
# How long a quiet source of a lone worker waits in Redis per read: it bounds how late the
# source sees the stop flag and its timer poll (250 ms), and costs an idle flow ~10 reads a
# second instead of 50 polls of Bytewax's whole loop.
_QUIET_WAIT_MS: Final = 100


def stopping() -> bool:
    return _STOP.is_set()


def stopped_within(seconds: float) -> bool:
    """Wait up to `seconds` for a stop; True if the flow is stopping (for periodic threads)."""
    return _STOP.wait(seconds)


def stop() -> None:
    """Ask the flow to stop: its sources end, and every sink writes a final checkpoint."""
    _STOP.set()


def keys_for(policy: Policy) -> Keys:
    return Keys(prefix=policy.streams.prefix, shards=policy.streams.shards)


def live_flow(policy: Policy, url: str, metrics: Metrics, *, alone: bool = True) -> object:
    """The live dataflow for one process; every Redis client comes from `url`.

    `alone`: this process is the whole cluster (one worker). Then the decode step loads new
    prospects' states ahead (see `StateStore`), and a quiet source waits in Redis for new
    entries instead of polling (see `connectors.new_entries`); neither is right when other
    workers exchange items with this one.
    """
    keys = keys_for(policy)
    streams = policy.streams
    engine = Engine(policy)

    def make() -> redis.Redis:
        return client(url)

    commit = CommitSink(
        make,
        keys,
        metrics,
        interval_s=streams.checkpoint_interval_ms / 1000,
        state_ttl_s=streams.state_ttl_days * 86_400,
        marker_ttl_s=streams.command_marker_ttl_hours * 3_600,
        stopping=stopping,
        dedupe_s=policy.gateway.dedupe_hours * 3_600,  # the gateway's markers, on redrive
        scorecard=streams.scorecard,
    )
    store = StateStore(make(), keys, metrics, stopping, saved=commit.saved, facts=streams.scorecard)
    residency = Residency(streams.idle_evict_seconds * 1000)
    sweep = _Every(0.25)  # up to `Residency.most` prospects leave per sweep

    tallies = threading.local()  # one per worker thread: a batch's counts go to its delta

    def logic(_resume: None) -> LiveProspectLogic:
        if not streams.scorecard:
            return LiveProspectLogic(engine, store)
        tally = getattr(tallies, "tally", None)
        if tally is None:
            tally = tallies.tally = Tally(policy)
        return LiveProspectLogic(engine, store, tally)

    settings = SourceSettings(
        max_deliveries=streams.max_deliveries,
        claim_idle_ms=streams.claim_idle_ms,
        ticks=streams.idle_evict_seconds > 0,  # the decode step sweeps idle prospects out
        block_ms=_QUIET_WAIT_MS if alone else 0,
    )
    reader = EventReader(policy.limits, frozenset(policy.sequences))

    def decode(batch: list[Entry]) -> list[LiveDecoded]:
        decoded = decode_live_batch(batch, reader)
        counts: dict[str, int] = {}
        prospects: list[str] = []
        for key, value in decoded:
            if type(key) is str:  # not a dead letter
                prospects.append(key)
                item = value[0]
                if not isinstance(item, Wake | Evict):
                    kind = event_type(cast(Event, item))
                    counts[kind] = counts.get(kind, 0) + 1
        metrics.events_decoded(counts)

        if alone:
            store.prefetch(prospects)
        now = time.monotonic_ns() // 1_000_000
        residency.saw(prospects, now)
        if sweep.due():  # idle prospects leave the worker (see `operators.residency`)
            decoded += [(p, (Evict(p), None)) for p in residency.idle(now)]
        return decoded

    return build_flow(
        RedisEventSource(
            make, keys, settings, stopping, make_reader_client=lambda: client(url, retries=0)
        ),
        decode,
        logic,
        commit,
        DeadLetterSink(make, keys, metrics, stopping),
    )


class _Every:
    """True at most once every `seconds` (monotonic)."""

    def __init__(self, seconds: float) -> None:
        self._every = seconds
        self._next = time.monotonic() + seconds

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._every
        return True


def housekeeping(
    r: redis.Redis, keys: Keys, metrics: Metrics, retention_ms: int, every_s: float = 5.0
) -> None:
    """Until the flow stops: keep the consumer-lag gauges current and Redis bounded (trim
    acknowledged event entries, and outputs past their retention; `connectors.trim`)."""
    while not stopped_within(every_s):
        try:
            record_lag(r, keys, metrics)
            trim_events(r, keys)
            seconds, micros = r.time()
            trim_outputs(r, keys, retention_ms, seconds * 1000 + micros // 1000)
        except Exception:  # housekeeping must never stop, nor be stopped by, the flow
            log.exception("housekeeping (consumer lag, trimming) failed")


def record_lag(r: redis.Redis, keys: Keys, metrics: Metrics) -> None:
    """Per shard: entries not yet acknowledged (Redis 7's undelivered `lag` plus pending)."""
    for shard in range(keys.shards):
        try:
            groups: Any = r.xinfo_groups(keys.events(shard))
        except redis.RedisError:
            continue
        for group in groups:
            if group["name"].decode() == keys.group:
                lag = (group.get("lag") or 0) + group["pending"]
                metrics.lag.labels(str(shard)).set(lag)
