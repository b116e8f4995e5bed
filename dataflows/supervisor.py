"""`touchflow run`: the processes that run the live flow, and how they stop.

One process by default. `--workers N` starts N worker processes on this host (Python threads
would share the GIL) that form one Bytewax cluster and split the shards. Across hosts, each host
starts its own process of one cluster with Bytewax's cluster flags (`--addresses` of every
process, `--process-id` of this one); the shard count is the parallelism ceiling (README,
"Across machines"). SIGINT/SIGTERM stop a process cleanly, after a final checkpoint.
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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Final

import redis
from bytewax.testing import cluster_main, run_main

from connectors.health import HEALTH
from connectors.metrics import Metrics
from connectors.redis_client import client, connect, redacted
from connectors.redis_server import EmbeddedRedis
from connectors.retry import retrying
from connectors.scorecard_metrics import ScorecardProvider
from connectors.scorecard_store import read_scorecard
from connectors.shard_count import claim_shards
from connectors.web import DEFAULT_HOST, WebServer, metrics_token, serve
from dataflows.live import housekeeping, keys_for, live_flow, stop, stopped_within, stopping
from operators.policy import Policy

log = logging.getLogger("touchflow")

# Bytewax epochs. Nothing here uses Bytewax's own recovery, but at each epoch's end
# `stateful_batch` calls `snapshot()` on every key active in it, all at once: with the default
# 10 s epochs that stalled the worker 16-30 ms every 10 s; 1 s epochs cut each stall to a tenth.
# (200 ms epochs, tried later, made no difference measurable in bench_live.)
EPOCH: Final = timedelta(seconds=1)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    log.info("signal %d: stopping after a final checkpoint", signum)
    stop()


@dataclass(frozen=True)
class LiveSettings:
    redis_url: str | None
    workers: int = 1
    metrics_port: int | None = None
    # Where the metrics port listens: loopback unless a deployment opens it (`--metrics-host`).
    metrics_host: str = DEFAULT_HOST
    data_dir: Path = Path(".touchflow")
    config: Path | None = None
    # Bytewax's cluster flags: every process's host:port, and this process's index in them.
    addresses: tuple[str, ...] = ()
    process_id: int = 0


def check_cluster(settings: LiveSettings, url: str | None) -> None:
    """Cluster flags make sense only together, with one process here and a shared Redis."""
    if not settings.addresses:
        if settings.process_id:
            msg = "--process-id needs --addresses (every process of the cluster, host:port)"
            raise ValueError(msg)
        return
    if url is None:
        msg = (
            "with --addresses, --redis (or REDIS_URL) is required: an embedded Redis per host "
            "would split the state between hosts"
        )
        raise ValueError(msg)
    if settings.workers != 1:
        msg = "with --addresses, each host starts its one process: drop --workers"
        raise ValueError(msg)
    if not 0 <= settings.process_id < len(settings.addresses):
        msg = f"--process-id must be 0 to {len(settings.addresses) - 1}, the index of this host"
        raise ValueError(msg)


def run(policy: Policy, settings: LiveSettings) -> int:
    """Run until SIGINT/SIGTERM; start an embedded Redis when no URL is given."""
    signal.signal(signal.SIGTERM, _on_signal)  # from the very start: a stop is never abrupt
    signal.signal(signal.SIGINT, _on_signal)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = settings.redis_url or os.environ.get("REDIS_URL")
    check_cluster(settings, url)
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
        if settings.addresses:  # this host's process of a cluster
            proc_id = settings.process_id
            log.info("process %d of %s", proc_id, ";".join(settings.addresses))
            return run_worker(
                policy,
                url,
                settings.metrics_port,
                list(settings.addresses),
                proc_id,
                metrics_host=settings.metrics_host,
            )
        if settings.workers == 1:
            return run_worker(
                policy,
                url,
                settings.metrics_port,
                addresses=None,
                proc_id=0,
                metrics_host=settings.metrics_host,
            )
        return _supervise(url, settings)
    finally:
        if embedded is not None:
            embedded.stop()


def run_worker(
    policy: Policy,
    url: str,
    metrics_port: int | None,
    addresses: list[str] | None,
    proc_id: int,
    *,
    metrics_host: str = DEFAULT_HOST,
) -> int:
    """One worker process: serve metrics, run the flow, exit 0 after a clean stop.

    The metrics port (`metrics_port + proc_id`) answers before the flow starts, so a probe sees
    the process from its first second, and stops after the flow's final checkpoint.
    """
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    metrics = Metrics()
    _tune_for_latency()
    server: WebServer | None = None
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

        server = serve(
            metrics,
            metrics_port + proc_id,
            problem,
            host=metrics_host,
            scorecard=scorecard_provider(policy, url, proc_id),
            token=metrics_token(),
        )
    flow = live_flow(policy, url, metrics, alone=addresses is None)
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
            server.stop()
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
    while not stopped_within(every_s):
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
            cmd += ["--metrics-host", settings.metrics_host]
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


def worker_main(
    policy: Policy,
    addresses: str,
    proc_id: int,
    metrics_port: int | None,
    metrics_host: str = DEFAULT_HOST,
) -> int:
    """Entry of a supervised worker process (the hidden `_worker` subcommand). The metrics
    token, like the Redis URL, comes in the environment, never on the command line."""
    url = os.environ["TOUCHFLOW_REDIS_URL"]
    return run_worker(
        policy, url, metrics_port, addresses.split(","), proc_id, metrics_host=metrics_host
    )


def scorecard_provider(policy: Policy, url: str, proc_id: int) -> ScorecardProvider | None:
    """What `/scorecard.json` and the `touchflow_scorecard_*` series read: process 0 only (one
    page per deployment, each series once; the counts are the deployment's, in one Redis hash
    every process adds to), and only where the live flow keeps a scorecard (`streams.scorecard`).

    Its own client: a read must not queue behind the flow's writes. One HGETALL per call, and
    `connectors.web` shares an answer for a second between a scrape and a page refresh.
    """
    if proc_id != 0 or not policy.streams.scorecard:
        return None
    reader, keys = client(url, retries=1), keys_for(policy)
    return lambda: read_scorecard(reader, keys, policy)
