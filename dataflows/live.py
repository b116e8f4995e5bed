"""`touchflow run` and `touchflow publish`: the dataflow live on Redis streams.

`run` builds the same flow as replay with Redis connectors; with `--workers N` it starts N worker
processes (Python threads would share the GIL) that form one Bytewax cluster and split the shards.
SIGINT/SIGTERM make the sources end, so the flow finishes and every sink writes a final
checkpoint before the process exits. A Redis that refuses writes (out of memory, read-only) is an
outage, not a crash: the sinks wait and retry, and `/healthz` says why meanwhile.
"""

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final, cast

import redis
from bytewax.testing import cluster_main, run_main

from connectors.checkpoint import StateStore
from connectors.health import HEALTH
from connectors.identity import index_profiles
from connectors.keys import Keys, prospect_of, shard_of
from connectors.metrics import Metrics, serve
from connectors.redis_client import (
    RedisUnavailableError,
    client,
    connect,
    redacted,
    refusal,
)
from connectors.redis_server import EmbeddedRedis
from connectors.redis_sink import CommitSink, DeadLetterSink, retrying
from connectors.redis_source import Entry, RedisEventSource, SourceSettings
from connectors.shard_count import claim_shards
from connectors.trim import trim_events, trim_outputs
from dataflows.outreach import LiveDecoded, build_flow, decode_live_batch
from operators.engine import Engine
from operators.events import Event, Profile, event_type
from operators.intake import EventReader
from operators.logic import Evict, LiveProspectLogic, Wake
from operators.policy import Policy
from operators.residency import Residency

log = logging.getLogger("touchflow")

_STOP = threading.Event()
# Bytewax epochs. Nothing here uses Bytewax's own recovery, but at each epoch's end
# `stateful_batch` calls `snapshot()` on every key active in it, all at once: with the default
# 10 s epochs that stalled the worker 16-30 ms every 10 s; 1 s epochs cut each stall to a tenth.
# (200 ms epochs, tried later, made no difference measurable in bench_live.)
EPOCH: Final = timedelta(seconds=1)
# `publish`: events per transaction, and how long a Redis refusing writes is waited for.
_PUBLISH_BATCH: Final = 1000
PUBLISH_GIVE_UP_S: Final = 60.0


def stopping() -> bool:
    return _STOP.is_set()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    log.info("signal %d: stopping after a final checkpoint", signum)
    _STOP.set()


@dataclass(frozen=True)
class LiveSettings:
    redis_url: str | None
    workers: int = 1
    metrics_port: int | None = None
    data_dir: Path = Path(".touchflow")
    config: Path | None = None


def keys_for(policy: Policy) -> Keys:
    return Keys(prefix=policy.streams.prefix, shards=policy.streams.shards)


def live_flow(policy: Policy, url: str, metrics: Metrics, *, prefetch: bool = True) -> object:
    """The live dataflow for one process; every Redis client comes from `url`.

    `prefetch`: the decode step loads new prospects' states (see `StateStore`); only right when
    this process is the whole cluster.
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
    )
    store = StateStore(make(), keys, metrics, stopping, unwritten=commit.unwritten)
    residency = Residency(streams.idle_evict_seconds * 1000)
    sweep = _Every(0.25)  # up to `Residency.most` prospects leave per sweep

    def logic(_resume: None) -> LiveProspectLogic:
        return LiveProspectLogic(engine, store)

    settings = SourceSettings(
        max_deliveries=streams.max_deliveries,
        claim_idle_ms=streams.claim_idle_ms,
        ticks=streams.idle_evict_seconds > 0,  # the decode step sweeps idle prospects out
    )
    reader = EventReader(policy.limits, frozenset(policy.sequences))

    index = make()
    dedupe_s = policy.gateway.dedupe_hours * 3_600

    def decode(batch: list[Entry]) -> list[LiveDecoded]:
        decoded = decode_live_batch(batch, reader)
        counts: dict[str, int] = {}
        prospects: list[str] = []
        addresses: list[tuple[str, str | None, str | None]] = []
        for key, value in decoded:
            if type(key) is str:  # not a dead letter
                prospects.append(key)
                item = value[0]
                if not isinstance(item, Wake | Evict):
                    kind = event_type(cast(Event, item))
                    counts[kind] = counts.get(kind, 0) + 1
                    if type(item) is Profile and (item.email or item.phone):
                        addresses.append((key, item.email, item.phone))
        metrics.events_decoded(counts)
        if addresses:  # the gateway finds prospects by address (and redrives what waited)
            retrying(
                "identity index",
                lambda: index_profiles(index, keys, addresses, dedupe_s=dedupe_s),
                stopping,
            )
        if prefetch:
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
    while not _STOP.wait(every_s):
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


def run(policy: Policy, settings: LiveSettings) -> int:
    """Run until SIGINT/SIGTERM; start an embedded Redis when no URL is given."""
    signal.signal(signal.SIGTERM, _on_signal)  # from the very start: a stop is never abrupt
    signal.signal(signal.SIGINT, _on_signal)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = settings.redis_url or os.environ.get("REDIS_URL")
    embedded: EmbeddedRedis | None = None
    if url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedRedis(data_dir=(settings.data_dir / "redis").resolve(), appendonly=True)
        embedded.start()
        url = embedded.url
        log.info("started embedded Redis at %s (data in %s)", url, settings.data_dir / "redis")
    try:
        checked = connect(url)  # fail fast, in one line, on a bad URL, password or TLS
        try:
            # A Redis that refuses for now (read-only after a failover, loading) is waited for.
            keys = keys_for(policy)
            retrying("shard count", lambda: claim_shards(checked, keys), stopping)
        finally:
            checked.close()
        log.info("touchflow live on %s, %d worker process(es)", redacted(url), settings.workers)
        if settings.workers == 1:
            return run_worker(policy, url, settings.metrics_port, addresses=None, proc_id=0)
        return _supervise(url, settings)
    finally:
        if embedded is not None:
            embedded.stop()


def run_worker(
    policy: Policy, url: str, metrics_port: int | None, addresses: list[str] | None, proc_id: int
) -> int:
    """One worker process: serve metrics, run the flow, exit 0 after a clean stop."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    metrics = Metrics()
    _tune_for_latency()
    server = None
    if metrics_port is not None:
        probe = client(url, retries=0)

        def problem() -> str | None:
            """Why this worker is not doing its work, or None: stopping, a write or read waiting
            on Redis (the reason its sink reported), or Redis not answering."""
            if stopping():
                return "stopping"
            why = HEALTH.problem()
            if why is not None:
                return why
            try:
                probe.ping()
            except redis.RedisError as exc:
                return f"Redis does not answer: {redacted(str(exc))}"
            return None

        server = serve(metrics, metrics_port + proc_id, problem)
    flow = live_flow(policy, url, metrics, prefetch=addresses is None)
    if proc_id == 0:
        threading.Thread(
            target=housekeeping,
            args=(
                client(url),
                keys_for(policy),
                metrics,
                policy.streams.retention_hours * 3_600_000,
            ),
            kwargs={"every_s": policy.streams.housekeeping_seconds},
            daemon=True,
        ).start()
    try:
        if addresses is None:
            run_main(flow, epoch_interval=EPOCH)  # type: ignore[no-untyped-call]
        else:
            cluster_main(flow, addresses, proc_id, epoch_interval=EPOCH)  # type: ignore[no-untyped-call]
    finally:
        if server is not None:
            server.shutdown()
    return 0


def _tune_for_latency() -> None:
    """Keep the worker's pauses short (trigger latency; README, Benchmarks).

    The checkpoint thread competes with the worker for the GIL: a worker coming back from a
    Redis round trip waited for it up to the 5 ms switch interval (traced: reads of 16 entries
    taking 16 ms while a checkpoint ran). 0.5 ms hands it back sooner.

    Prospect logic lives for the whole run, so the GC's full collections grow with the number of
    prospects: 40-80 ms at ~100k, each one a latency spike. Every second, what is alive is frozen
    (moved out of the collector's sight; reference counting still frees it), so collections only
    see young objects. A cycle that was alive when frozen and became garbage later (an exception
    held during a retry, for one) would never be collected: every ten minutes everything is
    unfrozen and fully collected once, which bounds that leak at the cost of one long pause.
    """
    sys.setswitchinterval(0.0005)
    threading.Thread(target=_freeze_survivors, daemon=True, name="gc-freeze").start()


def _freeze_survivors(every_s: float = 1.0, reclaim_every_s: float = 600.0) -> None:
    reclaimed = time.monotonic()
    while not _STOP.wait(every_s):
        if time.monotonic() - reclaimed >= reclaim_every_s:
            gc.unfreeze()
            gc.collect()
            reclaimed = time.monotonic()
        gc.freeze()


def _supervise(url: str, settings: LiveSettings) -> int:
    """Start N worker processes forming one cluster; forward stop signals; wait for all.

    The Redis URL goes to the workers in the environment, never on a command line (`ps` shows
    those, and the URL may hold a password).
    """
    addresses = ",".join(f"127.0.0.1:{port}" for port in _free_ports(settings.workers))
    env = {**os.environ, "TOUCHFLOW_REDIS_URL": url}
    children = []
    for proc_id in range(settings.workers):
        cmd = [sys.executable, "-m", "dataflows.cli", "_worker", addresses, str(proc_id)]
        if settings.config is not None:
            cmd += ["--config", str(settings.config)]
        if settings.metrics_port is not None:
            cmd += ["--metrics-port", str(settings.metrics_port)]
        children.append(subprocess.Popen(cmd, env=env))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return cluster_exit_code([child.wait() for child in children])


def cluster_exit_code(codes: list[int]) -> int:
    """0 only if every worker exited 0; else the first failure's code (1 for a worker killed
    by a signal, whose code is negative: `max` would have let 0 win over it)."""
    return next((1 if code < 0 else code for code in codes if code != 0), 0)


def _free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on loopback, for the cluster's worker addresses."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


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


def worker_main(policy: Policy, addresses: str, proc_id: int, metrics_port: int | None) -> int:
    """Entry of a supervised worker process (the hidden `_worker` subcommand)."""
    url = os.environ["TOUCHFLOW_REDIS_URL"]
    return run_worker(policy, url, metrics_port, addresses.split(","), proc_id)
