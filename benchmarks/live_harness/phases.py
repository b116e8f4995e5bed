"""The measured phases: steady rate (latency), backlog rounds (highest drained rate), replay."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import _common
import orjson

from connectors.keys import shard_of
from live_harness import DEFAULT_CONFIG, SCRIPT
from live_harness.process import CpuMeter, Flow
from live_harness.publish import Item, Progress, Streams, encode, id_ms, now_ms, now_ts
from operators.policy import load_policy
from operators.timeutil import format_ts

TICK_S: Final = 0.010
SAMPLE_S: Final = 0.5
BACKLOG_SAMPLE_S: Final = 0.020
PIPELINE: Final = 1000  # XADDs per round trip when publishing a backlog
TRIGGER_URL: Final = "https://example.com/pricing"
TRIGGER_PREFIX: Final = "t-"
DRAIN_TIMEOUT_S: Final = 120.0


# -- phase 1: steady rate -------------------------------------------------------------------------


@dataclass
class Steady:
    latencies: list[tuple[int, int]]  # (trigger entry ms, latency ms), in publish order
    triggers: int
    missing: int
    duplicated: int
    not_chat_invite: int
    seconds: float
    publish_rate: float
    max_catch_up: int
    samples: list[tuple[float, Progress]]
    drain_s: float | None
    cpu: dict[str, float]
    measured_from: float


def steady_phase(
    streams: Streams,
    flow: Flow,
    mix: list[Item],
    args: argparse.Namespace,
    redis_pid: int | None,
) -> Steady:
    """Publish at `rate` for warmup + seconds; triggers evenly spaced; sample progress."""
    rate: int = args.rate
    total = len(mix) + trigger_count(args)
    stride = max(1, round(1 / args.trigger_share)) if args.trigger_share > 0 else total + 1
    trigger_ids: list[tuple[bytes, bool]] = []  # (event entry id, in the measured window?)
    samples: list[tuple[float, Progress]] = []
    measure_from = args.warmup * rate
    sent = next_mix = 0
    max_catch_up = 0
    meter: CpuMeter | None = None
    t0 = time.monotonic()
    next_tick = next_sample = t0
    while sent < total:
        now = time.monotonic()
        due = min(total, int((now - t0) * rate) + 1)
        if due > sent:
            ts = now_ts()
            shards: list[int] = []
            payloads: list[bytes] = []
            trig_at: list[int] = []
            for k in range(sent, due):
                if k % stride == stride // 2:
                    n = len(trigger_ids) + len(trig_at)
                    prospect = f"{TRIGGER_PREFIX}{n:07d}"
                    trig_at.append(len(payloads))
                    doc = {"id": f"{prospect}-1", "type": "page_view", "prospect": prospect}
                    doc |= {"ts": ts, "url": TRIGGER_URL}
                    shards.append(shard_of(prospect, streams.keys.shards))
                    payloads.append(orjson.dumps(doc))
                else:
                    item = mix[next_mix]
                    next_mix += 1
                    shards.append(item[0])
                    payloads.append(encode(item, ts))
            ids = streams.send(shards, payloads)
            for i in trig_at:
                trigger_ids.append((ids[i], sent + i >= measure_from))
            max_catch_up = max(max_catch_up, due - sent)
            sent = due
        if meter is None and sent >= measure_from:
            meter = CpuMeter(flow, redis_pid)
        if now >= next_sample:
            next_sample += SAMPLE_S
            samples.append((now - t0, streams.progress()))
            flow.check_alive()
        next_tick += TICK_S
        time.sleep(max(0.0, next_tick - time.monotonic()))
    end = time.monotonic()
    cpu = meter.read() if meter is not None else {}
    samples.append((end - t0, streams.progress()))
    drain_s = wait_drained(streams, flow, timeout=DRAIN_TIMEOUT_S)
    latencies, missing, duplicated, wrong = trigger_latencies(streams, trigger_ids)
    return Steady(
        latencies=latencies,
        triggers=sum(1 for _, measured in trigger_ids if measured),
        missing=missing,
        duplicated=duplicated,
        not_chat_invite=wrong,
        seconds=end - t0,
        publish_rate=total / (end - t0),
        max_catch_up=max_catch_up,
        samples=samples,
        drain_s=drain_s,
        cpu=cpu,
        measured_from=args.warmup,
    )


def trigger_count(args: argparse.Namespace) -> int:
    total = args.rate * (args.warmup + args.seconds)
    if args.trigger_share <= 0:
        return 0
    stride = max(1, round(1 / args.trigger_share))
    return sum(1 for k in range(total) if k % stride == stride // 2)


def wait_drained(streams: Streams, flow: Flow, timeout: float) -> float | None:
    """Seconds until every published entry is acknowledged; None if not within `timeout`."""
    start = time.monotonic()
    while streams.progress().unacked > 0:
        flow.check_alive()
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.02)
    return time.monotonic() - start


def trigger_latencies(
    streams: Streams, trigger_ids: list[tuple[bytes, bool]]
) -> tuple[list[tuple[int, int]], int, int, int]:
    """(entry ms, latency ms) of each measured trigger; missing, duplicated and wrong commands."""
    commands: dict[int, list[tuple[bytes, str]]] = {}
    stream = streams.keys.commands("chat")
    start = b"-"
    while True:
        page = streams.r.xrange(stream, min=start, max="+", count=10_000)
        for entry_id, fields in page:
            command = orjson.loads(fields[b"command"])
            prospect: str = command["prospect"]
            if prospect.startswith(TRIGGER_PREFIX):
                n = int(prospect[len(TRIGGER_PREFIX) :])
                commands.setdefault(n, []).append((entry_id, command["action"]))
        if len(page) < 10_000:
            break
        ms, seq = page[-1][0].split(b"-")
        start = ms + b"-" + str(int(seq) + 1).encode()
    latencies: list[tuple[int, int]] = []
    missing = duplicated = wrong = 0
    for n, (event_id, measured) in enumerate(trigger_ids):
        got = commands.get(n, [])
        if not measured:
            continue
        if not got:
            missing += 1
            continue
        duplicated += len(got) > 1
        wrong += got[0][1] != "chat_invite"
        sent_ms = id_ms(event_id)
        latencies.append((sent_ms, id_ms(got[0][0]) - sent_ms))
    return latencies, missing, duplicated, wrong


# -- phase 2 and 3: backlog and replay ------------------------------------------------------------


@dataclass
class Round:
    events: int
    publish_s: float
    rate: float  # between checkpoints
    drain_rate: float  # whole drain, idle tail included
    drain_s: float | None
    checkpoints: int
    replay_rate: float
    cpu: dict[str, float] = field(default_factory=dict)


def backlog_round(
    streams: Streams,
    flow: Flow,
    mix: list[Item],
    path: Path,
    redis_pid: int | None,
    arbitration_ms: int,
    timeout: float,
) -> Round:
    """Pause the flow, publish a backlog (and write it to `path`), replay it, resume, measure."""
    wait_drained(streams, flow, timeout=DRAIN_TIMEOUT_S)
    before = streams.progress()
    if before.unacked:
        msg = f"backlog round started with {before.unacked} unacknowledged entries"
        raise RuntimeError(msg)
    flow.pause()
    start = time.monotonic()
    last_ms = now_ms()
    with path.open("wb") as f:
        for i in range(0, len(mix), PIPELINE):
            chunk = mix[i : i + PIPELINE]
            last_ms = now_ms()
            ts = format_ts(last_ms)
            payloads = [encode(item, ts) for item in chunk]
            streams.send([item[0] for item in chunk], payloads)
            f.write(b"\n".join(payloads) + b"\n")
    publish_s = time.monotonic() - start
    # Live decides each arbitration window when it closes on the wall clock; so does replay here.
    replay_rate = replay_events_per_s(path, len(mix), until=last_ms + arbitration_ms + 1000)
    target = streams.published
    meter = CpuMeter(flow, redis_pid)
    flow.resume()
    t0 = time.monotonic()
    jumps: list[tuple[float, int]] = []  # (time since resume, acked) when a checkpoint landed
    last = before.acked
    drain_s: float | None = None
    while True:
        p = streams.progress()
        t = time.monotonic() - t0
        if p.acked != last:
            jumps.append((t, p.acked))
            last = p.acked
        if p.acked >= target:
            drain_s = t
            break
        if t > timeout:
            break
        flow.check_alive()
        time.sleep(BACKLOG_SAMPLE_S)
    cpu = meter.read()
    done = last - before.acked
    whole = done / (drain_s if drain_s is not None else time.monotonic() - t0)
    if len(jumps) >= 3:  # first checkpoint .. the last one before the final (idle-tail) one
        (t1, a1), (t2, a2) = jumps[0], jumps[-2]
        rate = (a2 - a1) / (t2 - t1)
    else:
        rate = whole
    return Round(
        events=len(mix),
        publish_s=publish_s,
        rate=rate,
        drain_rate=whole,
        drain_s=drain_s,
        checkpoints=len(jumps),
        replay_rate=replay_rate,
        cpu=cpu,
    )


def replay_events_per_s(path: Path, events: int, until: int) -> float:
    """The replay flow over the file in a fresh interpreter (see `replay_child`); events/s."""
    command = [sys.executable, str(SCRIPT), "--child-replay", str(path), "--until", str(until)]
    done = subprocess.run(command, stdout=subprocess.PIPE, check=False, cwd=_common.ROOT)
    if done.returncode != 0:
        msg = f"replay child failed with exit code {done.returncode}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return events / float(result["elapsed_s"])


def replay_child(path: Path, until: int) -> dict[str, Any]:
    """bench_dataflow's `real` run (the flow `touchflow replay` runs, outputs to a counting sink,
    only `run_main` timed), with `until` so timers due by then fire at the end of input."""
    import gc

    from bench_dataflow import CountingSink
    from bytewax.testing import run_main

    from connectors.files import JsonLinesSource
    from dataflows.outreach import replay_flow
    from operators.engine import Engine

    outputs, dead = CountingSink(records=True), CountingSink()
    source = JsonLinesSource(path, 2048)
    flow = replay_flow(source, outputs, dead, Engine(load_policy(DEFAULT_CONFIG)), until=until)
    gc.collect()
    start = time.perf_counter()
    run_main(flow)  # type: ignore[no-untyped-call]
    elapsed = time.perf_counter() - start
    return {
        "elapsed_s": elapsed,
        "records": outputs.counts["records"],
        "dead_letters": dead.counts["items"],
    }
