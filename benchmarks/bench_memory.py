"""Memory of a live worker over a million distinct prospects: it tracks the active set.

What is measured
    A real `touchflow run` (one worker process, its own embedded Redis) while this script
    publishes one event for each of `--prospects` distinct prospects (default 1,000,000) at a
    steady `--rate` (default 15,000 events/s): page views, a fifth of them of the pricing page
    (a chat invite each). The worker's resident set size (VmRSS) is read once the first
    100,000 prospects are processed and again at the end, when everything is processed. With
    `--idle-evict` seconds (default 5) a prospect leaves the worker's memory after that long
    without input, so the resident set holds about rate x idle prospects, not everyone seen.
    Targets (issue 12): RSS at the end <= 1.25 x RSS after 100k, and <= 512 MB.

Checks
    Decisions are unchanged: the commands of a sample of prospects on the command streams equal
    `touchflow replay` of their events. Redis stays bounded too: the event streams' length at
    the end (acknowledged entries are trimmed by the housekeeping pass).

Usage: bench_memory.py [--json] [--prospects N] [--rate R] [--idle-evict S] [--seed N]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import _common
import msgspec
import redis

from connectors.keys import Keys, shard_of
from connectors.redis_server import EmbeddedRedis
from dataflows.replay import replay
from operators.engine import Engine
from operators.policy import load_policy
from operators.records import ENCODER
from operators.timeutil import format_ts

CONFIG = """
[streams]
prefix = "mem"
shards = 4
idle_evict_seconds = {idle}
housekeeping_seconds = 2
"""
KEYS = Keys(prefix="mem", shards=4)
SAMPLE_EVERY = 1_000  # every 1,000th prospect is checked against replay


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    msg = "no VmRSS"
    raise RuntimeError(msg)


def _in_memory(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        body = reply.read()
    found = re.search(rb"^touchflow_prospects_in_memory (\S+)$", body, re.M)
    return float(found.group(1)) if found else float("nan")


def _event(n: int) -> dict[str, Any]:
    url = "/pricing" if n % 5 == 0 else "/blog"
    now = format_ts(time.time_ns() // 1_000_000)
    return {"id": f"v{n}", "type": "page_view", "prospect": f"m{n}", "ts": now, "url": url}


def _drained(r: redis.Redis) -> bool:
    for shard in range(KEYS.shards):
        stream = KEYS.events(shard)
        last = r.xrevrange(stream, count=1)
        if not last:
            continue
        group = {g["name"].decode(): g for g in r.xinfo_groups(stream)}.get(KEYS.group)
        if group is None or group["pending"] or group["last-delivered-id"] != last[0][0]:
            return False
    return True


def _wait_drained(r: redis.Redis, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not _drained(r):
        if time.monotonic() > deadline:
            msg = "the flow did not drain its input"
            raise RuntimeError(msg)
        time.sleep(0.2)


def _publish(
    r: redis.Redis, first: int, last: int, rate: float, sample: list[dict[str, Any]]
) -> None:
    """Events `first`..`last - 1` at `rate` per second, in pipelines of 500."""
    start = time.monotonic()
    for batch in range(first, last, 500):
        pipe = r.pipeline(transaction=False)
        for n in range(batch, min(batch + 500, last)):
            doc = _event(n)
            if n % SAMPLE_EVERY == 0:
                sample.append(doc)
            pipe.xadd(
                KEYS.events(shard_of(doc["prospect"], KEYS.shards)),
                {"event": msgspec.json.encode(doc)},
            )
        pipe.execute()
        ahead = start + (min(batch + 500, last) - first) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    config = work / "memory.toml"
    config.write_text(CONFIG.format(idle=args.idle_evict))
    server = EmbeddedRedis(data_dir=work / "redis")
    server.start()
    port = _common.free_port()
    log = (work / "run.log").open("ab")
    cmd = [
        sys.executable,
        "-m",
        "dataflows.cli",
        "run",
        "--redis",
        server.url,
        "--config",
        str(config),
    ]
    flow = subprocess.Popen([*cmd, "--metrics-port", str(port)], stdout=log, stderr=log)
    r = redis.Redis.from_url(server.url)
    sample: list[dict[str, Any]] = []
    try:
        _wait_listening(port, flow)
        started = time.monotonic()
        first = min(100_000, args.prospects)
        _publish(r, 0, first, args.rate, sample)
        _wait_drained(r)
        rss_100k = _rss_mb(flow.pid)
        _publish(r, first, args.prospects, args.rate, sample)
        _wait_drained(r)
        elapsed = time.monotonic() - started
        time.sleep(3)  # a housekeeping pass trims the acknowledged entries
        rss_end = _rss_mb(flow.pid)
        in_memory = _in_memory(port)
        commands = [
            msgspec.json.decode(f[b"command"])
            for _i, f in r.xrange(KEYS.commands("chat"))
            if int(msgspec.json.decode(f[b"command"])["prospect"][1:]) % SAMPLE_EVERY == 0
        ]
        entries_end = sum(r.xlen(KEYS.events(s)) for s in range(KEYS.shards))
        redis_mb = int(r.info("memory")["used_memory"]) / 2**20
        matches = _matches_replay(sample, commands, config, work)
    finally:
        flow.terminate()
        flow.wait(timeout=60)
        r.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "prospects": args.prospects,
        "rss_after_100k_mb": round(rss_100k, 1),
        "rss_end_mb": round(rss_end, 1),
        "prospects_in_memory_end": in_memory,
        "ratio_end_to_100k": round(rss_end / rss_100k, 3),
        "idle_evict_seconds": args.idle_evict,
        "publish_rate_per_s": args.rate,
        "elapsed_s": round(elapsed, 1),
        "sample_prospects": len(sample),
        "sample_commands_match_replay": matches,
        "event_stream_entries_end": entries_end,
        "redis_used_memory_mb": round(redis_mb, 1),
        "machine": _common.machine(),
    }


def _matches_replay(
    sample: list[dict[str, Any]], commands: list[dict[str, Any]], config: Path, work: Path
) -> bool:
    path = work / "sample.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in sample))
    expected = replay(path, Engine(load_policy(config))).commands
    got = (
        sorted(ENCODER.encode(msgspec.convert(c, type=type(expected[0]))) for c in commands)
        if expected
        else []
    )
    return got == sorted(ENCODER.encode(c) for c in expected)


def _wait_listening(port: int, flow: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if flow.poll() is not None:
            msg = "touchflow run exited at start"
            raise RuntimeError(msg)
        try:
            _in_memory(port)
            return
        except OSError:
            time.sleep(0.2)
    msg = "touchflow run did not start"
    raise RuntimeError(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--prospects", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=15_000.0, help="events per second")
    parser.add_argument("--idle-evict", type=int, default=5, help="streams.idle_evict_seconds")
    args = parser.parse_args()
    _common.print_result(
        measure(args), "live worker memory over distinct prospects", as_json=args.json
    )


if __name__ == "__main__":
    main()
