"""What the live scorecard costs the live flow: drained events/s with `streams.scorecard` on vs off.

Setup
    One `EmbeddedRedis` (free port, temporary data dir, `appendonly yes` + `appendfsync
    everysec`) and two real `touchflow run` processes on it, each with a copy of the bundled
    default policy: one with `scorecard = true` under the prefix `on`, one with `scorecard =
    false` under `off`. Each has its own streams, so the two never share work; the one not being
    measured is stopped (SIGSTOP), so the two never share the cores either.

Rounds
    The flow under test is paused, a backlog of `--backlog` entries of bench_live's mix
    (`live_harness.publish.make_mix`: simulated traffic, fresh prospects each round, re-timed to
    the wall clock) is published to its streams, and it is resumed; acknowledgements land once
    per checkpoint, so the rate is the entries acknowledged between its first checkpoint after
    the resume and the last before the backlog is done, over the time between them (as
    bench_live's backlog rounds measure it). With the scorecard on, that includes counting every
    event (the replay's own path, `operators.scorecard_feed`), encoding the facts a batch
    changed, and adding each chunk's counts in its checkpoint call.

    First one warm-up round per side (`--warmup` entries, not reported): a flow's first
    backlog pays for what it does once (imports, caches, the GC's first freeze), which would
    count against whichever side went first. Then `--rounds` pairs, in ABBA order (on off, off
    on, on off, ...), so a machine that speeds up or slows down during the run weighs on both
    sides alike.

Reported: the median rate of each side, every round's rate, `ratio` = on / off of the medians
and `cost_pct` = (1 - ratio) x 100 (the issue's target: at most 10); `cost_pct_paired`, the
median over pairs of each pair's cost (each pair ran within seconds, so it is steadier when the
machine's load changes during a run); CPU time per event of each side's flow (its process
group, every thread: less sensitive to other load than the rate, though not what the target is
about) and of Redis (the flow waits for it: its commands' writes queue behind checkpoint
calls); `spread_pct` (the range of each side's rounds over its median), the load average at the
start and the end and the machine's steal time over the rounds, which say how noisy it was.
`--py-spy FILE` records one side's flow during its rounds (`--py-spy-side`, raw collapsed stacks
at `--py-spy-rate` Hz; a profiled run's rates are not representative).

    .venv/bin/python benchmarks/bench_scorecard_live.py [--json] [--rounds 5] [--backlog 60000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import redis
from live_harness import DEFAULT_CONFIG
from live_harness.phases import PIPELINE
from live_harness.process import Flow, pid_cpu_s, py_spy
from live_harness.publish import Streams, encode, make_mix, now_ms

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from connectors.state_value import split
from operators.timeutil import format_ts

SAMPLE_S = 0.02
TIMEOUT_S = 300.0
SIDES = ("on", "off")


def config_for(workdir: Path, side: str) -> Path:
    """The default policy with the side's prefix and scorecard switch."""
    text = DEFAULT_CONFIG.read_text()
    text = re.sub(r'(?m)^prefix = "touchflow"', f'prefix = "{side}"', text)
    text = re.sub(r"(?m)^scorecard = true", f"scorecard = {str(side == 'on').lower()}", text)
    path = workdir / f"{side}.toml"
    path.write_text(text)
    return path


def plan(rounds: int) -> list[str]:
    """ABBA: on off, off on, on off, ... (`rounds` of each side)."""
    return [s for n in range(rounds) for s in (SIDES if n % 2 == 0 else SIDES[::-1])]


def drain_round(
    streams: Streams, flow: Flow, mix: list[Any], redis_pid: int | None = None
) -> dict[str, float]:
    """Publish a backlog while the flow is paused, resume it, time the acknowledgements, and
    pause it again (the other side's rounds get the cores to themselves)."""
    before = streams.progress()
    for i in range(0, len(mix), PIPELINE):
        chunk = mix[i : i + PIPELINE]
        ts = format_ts(now_ms())
        streams.send([item[0] for item in chunk], [encode(item, ts) for item in chunk])
    target = streams.published
    cpu0, redis0 = flow.cpu_s(), pid_cpu_s(redis_pid)
    flow.resume()
    t0 = time.monotonic()
    jumps: list[tuple[float, int]] = []
    last = before.acked
    while last < target:
        if time.monotonic() - t0 > TIMEOUT_S:
            msg = f"the flow did not drain {len(mix)} entries in {TIMEOUT_S:.0f} s"
            raise RuntimeError(msg)
        flow.check_alive()
        acked = streams.progress().acked
        if acked != last:
            jumps.append((time.monotonic() - t0, acked))
            last = acked
        time.sleep(SAMPLE_S)
    drain_s = time.monotonic() - t0
    cpu_s, redis_s = flow.cpu_s() - cpu0, pid_cpu_s(redis_pid) - redis0
    flow.pause()
    if len(jumps) >= 3:
        (t1, a1), (t2, a2) = jumps[0], jumps[-2]
        rate = (a2 - a1) / (t2 - t1)
    else:
        rate = (target - before.acked) / drain_s
    return {
        "rate": rate,
        "drain_s": drain_s,
        "cpu_us_per_event": 1e6 * cpu_s / len(mix),
        "redis_cpu_us_per_event": 1e6 * redis_s / len(mix),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="touchflow-bench-scorecard-"))
    server = EmbeddedRedis(
        data_dir=workdir / "redis",
        appendonly=True,
        appendfsync="everysec",
        extra_args=() if args.aof_rewrites else ("--auto-aof-rewrite-percentage", "0"),
    )
    flows: dict[str, Flow] = {}
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    order = plan(args.rounds)
    load_at_start = round(os.getloadavg()[0], 2)
    try:
        server.start()
        r = redis.Redis.from_url(server.url, socket_timeout=60)
        streams: dict[str, Streams] = {}
        for side in SIDES:
            keys = Keys(prefix=side, shards=4)
            streams[side] = Streams(r, keys)
            flows[side] = Flow(server.url, config_for(workdir, side), 1, workdir / f"{side}.log")
            flows[side].wait_started(streams[side])
            flows[side].pause()
        for n, side in enumerate(SIDES):
            if args.warmup:
                drain_round(streams[side], flows[side], make_mix(args.warmup, f"w{n}-", 4, n))
        steal0 = _common.cpu_ticks()
        with py_spy(args.py_spy, flows[args.py_spy_side].proc.pid, args.py_spy_rate):
            for n, side in enumerate(order):
                mix = make_mix(args.backlog, f"r{n}-", 4, args.seed + n)
                one = drain_round(streams[side], flows[side], mix, server.pid)
                rounds[side].append(one)
                if not args.json:
                    print(f"{side:>3}: {one['rate']:,.0f} events/s", file=sys.stderr)
        steal1 = _common.cpu_ticks()
        facts = sum(
            1
            for key in r.scan_iter(match="on:state:*", count=1000)
            if (value := r.get(key)) is not None and split(value)[1] is not None
        )
        counted = r.hlen("on:scorecard")
        forks = r.info("stats")["total_forks"]
        r.close()
    finally:
        for flow in flows.values():
            flow.stop(timeout=30)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    rates = {side: [x["rate"] for x in rounds[side]] for side in SIDES}
    cpu = {side: [x["cpu_us_per_event"] for x in rounds[side]] for side in SIDES}
    redis_cpu = {side: [x["redis_cpu_us_per_event"] for x in rounds[side]] for side in SIDES}
    on, off = _common.median(rates["on"]), _common.median(rates["off"])
    paired = [100 * (1 - a / b) for a, b in zip(rates["on"], rates["off"], strict=True)]
    cpu_on, cpu_off = _common.median(cpu["on"]), _common.median(cpu["off"])
    return {
        "benchmark": "bench_scorecard_live",
        "backlog": args.backlog,
        "rounds_each": args.rounds,
        "order": order,
        "on_events_per_s": round(on),
        "off_events_per_s": round(off),
        "ratio": round(on / off, 3),
        "cost_pct": round(100 * (1 - on / off), 1),
        "cost_pct_paired": round(_common.median(paired), 1),
        "cost_pct_pairs": [round(x, 1) for x in paired],
        "spread_pct": {side: spread(rates[side]) for side in SIDES},
        "cpu_us_per_event": {"on": round(cpu_on, 1), "off": round(cpu_off, 1)},
        "cpu_cost_pct": round(100 * (cpu_on / cpu_off - 1), 1),
        "redis_cpu_us_per_event": {s: round(_common.median(redis_cpu[s]), 1) for s in SIDES},
        "rounds": rounds,
        "prospects_with_facts": facts,
        "scorecard_fields": counted,
        "redis_forks": forks,
        "machine": {
            **_common.machine(),
            "load_avg_1m_at_start": load_at_start,
            "steal_pct": _common.steal_pct(steal0, steal1),
        },
    }


def spread(values: list[float]) -> float:
    """The range of `values` over their median, in %."""
    return round(100 * (max(values) - min(values)) / _common.median(values), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each side (>= 3)")
    parser.add_argument("--backlog", type=int, default=60_000, help="entries per round")
    parser.add_argument("--warmup", type=int, default=20_000, help="entries, per side, first")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--aof-rewrites",
        action="store_true",
        help="let Redis rewrite its AOF as it grows (a fork landing in a random round)",
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="profile a flow to FILE")
    parser.add_argument("--py-spy-side", choices=SIDES, default="on")
    parser.add_argument("--py-spy-rate", type=int, default=100, help="samples per second")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds: at least 3 of each side (the issue asks for a median of three)")
    result = measure(args)
    _common.print_result(result, "live scorecard on vs off", as_json=args.json)


if __name__ == "__main__":
    main()
