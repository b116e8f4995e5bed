"""What the live scorecard costs the live flow: drained events/s with `streams.scorecard` on vs off.

Setup
    One `EmbeddedRedis` (free port, temporary data dir, `appendonly yes` + `appendfsync
    everysec`) and two real `touchflow run` processes on it, each with a copy of the bundled
    default policy: one with `scorecard = true` under the prefix `on`, one with `scorecard =
    false` under `off`. Each has its own streams, so the two never share work; the one not being
    measured is stopped (SIGSTOP), so the two never share the cores either.

Rounds (alternating: on, off, on, off, ...; `--rounds` of each)
    The flow under test is paused, a backlog of `--backlog` entries of bench_live's mix
    (`live_harness.publish.make_mix`: simulated traffic, fresh prospects each round, re-timed to
    the wall clock) is published to its streams, and it is resumed; acknowledgements land once
    per checkpoint, so the rate is the entries acknowledged between its first checkpoint after
    the resume and the last before the backlog is done, over the time between them (as
    bench_live's backlog rounds measure it). With the scorecard on, that includes counting every
    event (the replay's own path, `operators.scorecard_feed`), encoding each prospect's facts
    with its state, and adding each chunk's counts in its checkpoint call.

Reported: the median rate of each side, every round's rate, `ratio` = on / off, and
`cost_pct` = (1 - ratio) x 100 (the issue's target: at most 10). Rounds alternate so both sides
see the same machine weather; `spread_pct` (the range of each side's rounds over its median)
says how noisy the machine was. `--py-spy FILE` records the `on` flow during its rounds.

    .venv/bin/python benchmarks/bench_scorecard_live.py [--json] [--rounds 3] [--backlog 30000]
"""

from __future__ import annotations

import argparse
import contextlib
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
from live_harness.process import Flow, py_spy
from live_harness.publish import Streams, encode, make_mix, now_ms

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from operators.timeutil import format_ts

SAMPLE_S = 0.02
TIMEOUT_S = 300.0


def config_for(workdir: Path, side: str) -> Path:
    """The default policy with the side's prefix and scorecard switch."""
    text = DEFAULT_CONFIG.read_text()
    text = re.sub(r'(?m)^prefix = "touchflow"', f'prefix = "{side}"', text)
    text = re.sub(r"(?m)^scorecard = true", f"scorecard = {str(side == 'on').lower()}", text)
    path = workdir / f"{side}.toml"
    path.write_text(text)
    return path


def drain_round(streams: Streams, flow: Flow, mix: list[Any]) -> dict[str, float]:
    """Publish a backlog while the flow is paused, resume it, time the acknowledgements, and
    pause it again (the other side's rounds get the cores to themselves)."""
    before = streams.progress()
    for i in range(0, len(mix), PIPELINE):
        chunk = mix[i : i + PIPELINE]
        ts = format_ts(now_ms())
        streams.send([item[0] for item in chunk], [encode(item, ts) for item in chunk])
    target = streams.published
    cpu0 = flow.cpu_s()
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
    cpu_s = flow.cpu_s() - cpu0
    flow.pause()
    if len(jumps) >= 3:
        (t1, a1), (t2, a2) = jumps[0], jumps[-2]
        rate = (a2 - a1) / (t2 - t1)
    else:
        rate = (target - before.acked) / drain_s
    return {"rate": rate, "drain_s": drain_s, "cpu_s_per_1k": 1000 * cpu_s / len(mix)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="touchflow-bench-scorecard-"))
    server = EmbeddedRedis(data_dir=workdir / "redis", appendonly=True, appendfsync="everysec")
    flows: dict[str, Flow] = {}
    rounds: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    load_at_start = round(os.getloadavg()[0], 2)
    try:
        server.start()
        r = redis.Redis.from_url(server.url, socket_timeout=60)
        streams: dict[str, Streams] = {}
        for side in ("on", "off"):
            keys = Keys(prefix=side, shards=4)
            streams[side] = Streams(r, keys)
            flows[side] = Flow(server.url, config_for(workdir, side), 1, workdir / f"{side}.log")
            flows[side].wait_started(streams[side])
            flows[side].pause()
        plan = [side for _ in range(args.rounds) for side in ("on", "off")]
        spy = contextlib.ExitStack()
        with spy:
            if args.py_spy is not None:
                spy.enter_context(py_spy(args.py_spy, flows["on"].proc.pid))
            for n, side in enumerate(plan):
                mix = make_mix(args.backlog, f"r{n}-", 4, args.seed + n)
                one = drain_round(streams[side], flows[side], mix)
                rounds[side].append(one)
                if not args.json:
                    print(f"{side:>3}: {one['rate']:,.0f} events/s", file=sys.stderr)
        facts = sum(1 for _ in r.scan_iter(match="on:facts:*", count=1000))
        counted = r.hlen("on:scorecard")
        r.close()
    finally:
        for flow in flows.values():
            flow.stop(timeout=30)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    on = _common.median([x["rate"] for x in rounds["on"]])
    off = _common.median([x["rate"] for x in rounds["off"]])

    def spread(side: str, median: float) -> float:
        rates = [x["rate"] for x in rounds[side]]
        return round(100 * (max(rates) - min(rates)) / median, 1)

    return {
        "benchmark": "bench_scorecard_live",
        "backlog": args.backlog,
        "rounds_each": args.rounds,
        "on_events_per_s": round(on),
        "off_events_per_s": round(off),
        "ratio": round(on / off, 3),
        "cost_pct": round(100 * (1 - on / off), 1),
        "spread_pct": {"on": spread("on", on), "off": spread("off", off)},
        "rounds": rounds,
        "prospects_with_facts": facts,
        "scorecard_fields": counted,
        "machine": {**_common.machine(), "load_avg_1m_at_start": load_at_start},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (>= 3)")
    parser.add_argument("--backlog", type=int, default=30_000, help="entries per round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--py-spy", type=Path, default=None, help="profile the `on` flow")
    args = parser.parse_args()
    result = measure(args)
    _common.print_result(result, "live scorecard on vs off", as_json=args.json)


if __name__ == "__main__":
    main()
