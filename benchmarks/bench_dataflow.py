"""Whole dataflow in replay mode vs a Bytewax no-op `stateful_batch` over the same keyed stream.

What is measured
    events/s of the real outreach dataflow in replay mode (`dataflows.outreach.replay_flow`, the
    flow `touchflow replay` runs: file source -> batch decode -> valid/dead-letter branch ->
    `stateful_batch` keyed by prospect running `ProspectLogic`/`Engine` -> outputs) over a
    generated JSON Lines file, one worker, `run_main`. Outputs go to a sink that only counts
    them. (`dataflows.replay.replay` runs this same flow and then sorts every output into
    canonical order after the run; that post-processing is not dataflow throughput.)

Baseline (same run, same input, interleaved)
    The same wiring (`dataflows.outreach.build_flow`) with the rules taken out: the same
    `JsonLinesSource` and batch size, the same `decode_batch` step and branch, and a
    `stateful_batch` over the same (prospect, event) keys whose logic does nothing but return
    RETAIN. Both sides pay for reading, decoding and Bytewax's per-key activation identically,
    so the ratio is what touchflow's per-event work costs on top of the cheapest possible
    keyed stateful step over this stream. `--strict-baseline` adds a no-op fed already-decoded
    (prospect, event) tuples from a `TestingSource`, i.e. without reading and decoding, for a
    harsher ratio.

    Each run is a fresh child process (same interpreter, same modules imported), timing only
    `run_main`, so no run inherits another's heap or caches; real and no-op runs alternate and
    each side runs `--repeat` times; medians are reported. ratio = real / no-op. An `Engine`
    alone pass (no Bytewax: decode outside the clock, time only `Engine.apply` into a dict of
    states) shows how the real flow's time splits between touchflow and the framework.

Memory per prospect (be honest about what this is)
    rss_bytes_per_prospect = (peak RSS of the real flow - peak RSS of a baseline that loads the
    same modules and reads and decodes the same input through the same steps, but whose
    stateful step returns DISCARD and so keeps nothing) / distinct prospects. That is everything
    it costs to keep a prospect in memory in this flow: the `ProspectState` and what it holds,
    the `ProspectLogic` object, Bytewax's own per-key bookkeeping, allocator overhead, and any
    extra transient memory of the real flow (its output records). Peak RSS is taken because
    state is largest at end of input (VmHWM, per process image; page granularity is noise at
    100k keys).
    Also reported: the Bytewax share ((no-op RETAIN - DISCARD) / prospects), touchflow's own
    share ((real - no-op RETAIN) / prospects), the RSS growth of applying the events with the
    `Engine` alone into a dict of states (no Bytewax; includes the dict and every string the
    states keep from the events), and the MessagePack size of a state (what a Redis checkpoint
    stores).

Usage: bench_dataflow.py [--json] [--events N] [--prospects N] [--repeat N] [--breakdown]
       [--profile] [--strict-baseline] [--generator auto|simulate|local]
       [--input FILE | --save-input FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import _common
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from connectors.files import JsonLinesSource, RawLine
from dataflows.outreach import Decoded, build_flow, decode_batch, replay_flow
from operators.engine import Engine
from operators.events import Event, decode_event
from operators.intake import EventReader
from operators.policy import load_policy
from operators.state import ProspectState, encode_state

MODES: Final = ("real", "noop", "discard", "engine", "noop-predecoded")
_NOTHING: Final[tuple[Any, ...]] = ()


# -- child side: one measured run per process ---------------------------------------------------


class _CountPartition(StatelessSinkPartition[Any]):
    def __init__(self, counts: Counter[str], records: bool) -> None:
        self._counts = counts
        self._records = records

    def write_batch(self, items: list[Any]) -> None:
        self._counts["items"] += len(items)
        if self._records:  # stateful_batch emits (prospect, list of outputs)
            self._counts["records"] += sum(len(outs) for _, outs in items)


class CountingSink(DynamicSink[Any]):
    """Counts what reaches it and keeps nothing (a sink that costs next to nothing)."""

    def __init__(self, *, records: bool = False) -> None:
        self.counts: Counter[str] = Counter()
        self._records = records

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountPartition:
        return _CountPartition(self.counts, self._records)


class NoopLogic(StatefulBatchLogic[Event, Any, None]):
    """The cheapest per-key logic: emit nothing, keep (RETAIN) or drop (DISCARD) the key."""

    __slots__ = ("_verdict",)

    def __init__(self, *, keep: bool) -> None:
        self._verdict = self.RETAIN if keep else self.DISCARD

    def on_batch(self, values: list[Event]) -> tuple[tuple[Any, ...], bool]:
        return _NOTHING, self._verdict

    def snapshot(self) -> None:
        return None


def noop_flow(path: Path, batch_size: int, *, keep: bool) -> Dataflow:
    """The real flow's exact wiring (`build_flow`, same source and decoder), rules swapped out."""
    builder: Callable[[None], NoopLogic] = lambda _resume: NoopLogic(keep=keep)  # noqa: E731
    source = JsonLinesSource(path, batch_size)
    reader = EventReader(load_policy().limits)

    def decode(batch: list[RawLine]) -> list[Decoded]:
        return decode_batch(batch, reader)

    return build_flow(source, decode, builder, CountingSink(), CountingSink())


def _decoded_batches(path: Path, batch_size: int) -> Iterator[list[Event]]:
    """The file's valid events, decoded in batches (as the flow's decode step does)."""
    batch: list[Event] = []
    with path.open("rb") as f:
        for line in f:
            if line := line.strip():
                try:
                    batch.append(decode_event(line))
                except ValueError:  # msgspec.DecodeError is a ValueError
                    continue
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _timed_run(flow: Dataflow, profile: bool) -> float:
    gc.collect()
    if profile:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(run_main, flow)
        elapsed = time.perf_counter() - start
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        return elapsed
    start = time.perf_counter()
    run_main(flow)  # type: ignore[no-untyped-call]
    return time.perf_counter() - start


def child(
    mode: str, path: Path, batch_size: int, *, breakdown: bool, profile: bool
) -> dict[str, Any]:
    """One measured run; returns elapsed seconds, peak RSS and what it counted."""
    result: dict[str, Any] = {"mode": mode}
    if mode == "real":
        outputs, dead = CountingSink(records=True), CountingSink()
        source = JsonLinesSource(path, batch_size)
        flow = replay_flow(source, outputs, dead, Engine(load_policy()))
        result["elapsed_s"] = _timed_run(flow, profile)
        result["effects"] = outputs.counts["items"]
        result["records"] = outputs.counts["records"]
        result["dead_letters"] = dead.counts["items"]
    elif mode in ("noop", "discard"):
        flow = noop_flow(path, batch_size, keep=mode == "noop")
        result["elapsed_s"] = _timed_run(flow, profile)
    elif mode == "noop-predecoded":
        keyed = [(e.prospect, e) for b in _decoded_batches(path, batch_size) for e in b]
        flow = Dataflow("noop_predecoded")
        stream = op.input("events", flow, TestingSource(keyed, batch_size))
        builder: Callable[[None], NoopLogic] = lambda _resume: NoopLogic(keep=True)  # noqa: E731
        op.output("outputs", op.stateful_batch("prospects", stream, builder), CountingSink())
        result["elapsed_s"] = _timed_run(flow, profile)
        result["events"] = len(keyed)
    elif mode == "engine":
        result.update(_engine_only(path, batch_size, breakdown))
    else:
        msg = f"bench_dataflow: unknown child mode {mode!r}"
        raise ValueError(msg)
    result["peak_rss_bytes"] = _common.peak_rss_bytes()
    return result


def _engine_only(path: Path, batch_size: int, breakdown: bool) -> dict[str, Any]:
    """Apply every valid event with `Engine.apply` into a dict of states: no Bytewax at all.

    Events are decoded batch by batch outside the clock and dropped after use, as in the flow,
    so the RSS growth counts the states and every string they keep from the events (prospect
    id, time zone, urls, topics), not the input. Only the `apply` loop is timed.
    """
    engine = Engine(load_policy())
    apply = engine.apply
    states: dict[str, ProspectState] = {}
    per_type: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    clock = time.perf_counter
    elapsed = 0.0
    events = 0
    gc.collect()
    rss_before = _common.current_rss_bytes()
    for batch in _decoded_batches(path, batch_size):
        events += len(batch)
        start = clock()
        if breakdown:  # two clock reads per event: the total is inflated, the split is not
            for event in batch:
                state = states.get(event.prospect)
                if state is None:
                    state = states[event.prospect] = ProspectState(prospect=event.prospect)
                t0 = clock()
                apply(state, event)
                name = type(event).__name__
                seconds[name] = seconds.get(name, 0.0) + clock() - t0
                per_type[name] += 1
        else:
            for event in batch:
                state = states.get(event.prospect)
                if state is None:
                    state = states[event.prospect] = ProspectState(prospect=event.prospect)
                apply(state, event)
        elapsed += clock() - start
    del batch
    gc.collect()
    rss_after = _common.current_rss_bytes()
    prospects = len(states)
    packed = sum(len(encode_state(s)) for s in states.values())
    result: dict[str, Any] = {
        "elapsed_s": elapsed,
        "events": events,
        "prospects": prospects,
        "state_rss_bytes_per_prospect": (rss_after - rss_before) / prospects,
        "redis_bytes_per_prospect": packed / prospects,
    }
    if breakdown:
        result["breakdown"] = {
            name: {"events": per_type[name], "us_each": seconds[name] / per_type[name] * 1e6}
            for name in sorted(seconds, key=seconds.__getitem__, reverse=True)
        }
    return result


# -- parent side --------------------------------------------------------------------------------


def run_child(
    mode: str, path: Path, args: argparse.Namespace, *, profile: bool = False
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    command = [sys.executable, __file__, "--child", mode, "--input", str(path)]
    command += ["--batch-size", str(args.batch_size)]
    if args.breakdown:
        command.append("--breakdown")
    if profile:
        command.append("--profile")
    done = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    if done.returncode != 0:
        msg = f"bench_dataflow: {mode} run failed with exit code {done.returncode}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the input once, run every side in fresh processes, and summarise."""
    workdir = Path(tempfile.mkdtemp(prefix="touchflow-bench-"))
    try:
        if args.input is not None:
            path, generator, gen_s = args.input, f"file {args.input}", 0.0
        else:
            path = args.save_input or workdir / "events.jsonl"
            _say(args, f"generating ~{args.events:,} events for {args.prospects:,} prospects ...")
            start = time.perf_counter()
            generator = _common.write_events(
                path, args.prospects, args.events, seed=args.seed, generator=args.generator
            )
            gen_s = time.perf_counter() - start
        lines = _common.count_lines(path)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for r in range(args.repeat):
            for mode in ("noop", "real") if r % 2 == 0 else ("real", "noop"):
                _say(args, f"round {r + 1}/{args.repeat}: {mode} ...")
                runs[mode].append(run_child(mode, path, args))
        if args.strict_baseline:
            for r in range(args.repeat):
                _say(args, f"round {r + 1}/{args.repeat}: noop over pre-decoded TestingSource ...")
                runs["noop-predecoded"].append(run_child("noop-predecoded", path, args))
        _say(args, "memory baseline (DISCARD) ...")
        runs["discard"].append(run_child("discard", path, args))
        _say(args, "engine alone (no Bytewax) ...")
        runs["engine"].append(run_child("engine", path, args))
        if args.profile:
            _say(args, "profiling the real flow (cProfile, not timed) ...")
            run_child("real", path, args, profile=True)
    finally:
        if args.input is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return summarise(runs, lines, generator, gen_s, args)


def summarise(
    runs: dict[str, list[dict[str, Any]]],
    lines: int,
    generator: str,
    gen_s: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Medians, ratios and the memory arithmetic."""
    med = _common.median

    def eps(mode: str, events: int = lines) -> float:
        return med([events / run["elapsed_s"] for run in runs[mode]])

    def peak(mode: str) -> float:
        return med([run["peak_rss_bytes"] for run in runs[mode]])

    engine = runs["engine"][0]
    prospects = engine["prospects"]
    real_eps, noop_eps = eps("real"), eps("noop")
    real_run = runs["real"][0]
    result: dict[str, Any] = {
        "events_per_s": round(real_eps),
        "noop_events_per_s": round(noop_eps),
        "ratio": round(real_eps / noop_eps, 3),
        "rss_bytes_per_prospect": round((peak("real") - peak("discard")) / prospects),
        "rss_bytes_per_prospect_touchflow_only": round((peak("real") - peak("noop")) / prospects),
        "rss_bytes_per_prospect_bytewax_key": round((peak("noop") - peak("discard")) / prospects),
        "engine_state_rss_bytes_per_prospect": round(engine["state_rss_bytes_per_prospect"]),
        "redis_bytes_per_prospect": round(engine["redis_bytes_per_prospect"]),
        "engine_only_events_per_s": round(engine["events"] / engine["elapsed_s"]),
        "events": lines,
        "valid_events": engine["events"],
        "prospects": prospects,
        "dead_letters": real_run["dead_letters"],
        "output_records": real_run["records"],
        "peak_rss_bytes": {m: round(peak(m)) for m in ("real", "noop", "discard")},
        "samples_events_per_s": {
            m: [round(lines / run["elapsed_s"]) for run in runs[m]] for m in ("real", "noop")
        },
        "repeat": args.repeat,
        "batch_size": args.batch_size,
        "generator": generator,
        "generate_s": round(gen_s, 1),
        "machine": _common.machine(),
    }
    if runs["noop-predecoded"]:
        predecoded = runs["noop-predecoded"]
        result["noop_predecoded_events_per_s"] = round(
            med([run["events"] / run["elapsed_s"] for run in predecoded])
        )
        result["ratio_vs_predecoded"] = round(real_eps / result["noop_predecoded_events_per_s"], 3)
    if "breakdown" in engine:
        result["engine_breakdown_us"] = engine["breakdown"]
    return result


def print_report(result: dict[str, Any]) -> None:
    rows: list[tuple[object, ...]] = [
        (
            "touchflow dataflow (replay, 1 worker)",
            f"{result['events_per_s']:,}",
            f"{result['ratio']:.2f}",
        ),
        ("no-op stateful_batch, same input", f"{result['noop_events_per_s']:,}", "1.00"),
    ]
    if "noop_predecoded_events_per_s" in result:
        rows.append(
            (
                "no-op stateful_batch, pre-decoded TestingSource",
                f"{result['noop_predecoded_events_per_s']:,}",
                f"{result['ratio_vs_predecoded']:.2f} (real / this)",
            )
        )
    rows.append(("Engine.apply alone (no Bytewax)", f"{result['engine_only_events_per_s']:,}", "-"))
    _common.print_table(
        f"Dataflow throughput: {result['events']:,} events, {result['prospects']:,} prospects "
        f"(median of {result['repeat']})",
        ("flow", "events/s", "ratio to no-op"),
        rows,
    )
    _common.print_table(
        "Memory per prospect",
        ("measure", "bytes/prospect"),
        [
            ("real peak RSS - DISCARD baseline peak RSS", f"{result['rss_bytes_per_prospect']:,}"),
            (
                "  of which touchflow (real - no-op RETAIN)",
                f"{result['rss_bytes_per_prospect_touchflow_only']:,}",
            ),
            (
                "  of which Bytewax per key (RETAIN - DISCARD)",
                f"{result['rss_bytes_per_prospect_bytewax_key']:,}",
            ),
            (
                "Engine alone: RSS growth of the states dict",
                f"{result['engine_state_rss_bytes_per_prospect']:,}",
            ),
            ("Redis checkpoint (MessagePack)", f"{result['redis_bytes_per_prospect']:,}"),
        ],
    )
    if "engine_breakdown_us" in result:
        _common.print_table(
            "Engine.apply by event type (with per-event clock reads)",
            ("event", "count", "us each"),
            [
                (k, f"{v['events']:,}", f"{v['us_each']:.2f}")
                for k, v in result["engine_breakdown_us"].items()
            ],
        )
    m = result["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, bytewax {m['bytewax']}; "
        f"input from {result['generator']}; {result['dead_letters']:,} dead letters, "
        f"{result['output_records']:,} output records"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--prospects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=2048, help="source batch size")
    parser.add_argument("--generator", choices=("auto", "simulate", "local"), default="auto")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--input", type=Path, default=None, help="use this JSONL file instead")
    inputs.add_argument("--save-input", type=Path, default=None, help="keep the generated input")
    parser.add_argument("--breakdown", action="store_true", help="engine time per event type")
    parser.add_argument("--profile", action="store_true", help="cProfile one real run (stderr)")
    parser.add_argument(
        "--strict-baseline", action="store_true", help="also a no-op over pre-decoded input"
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.input is None:
            parser.error("--child needs --input")
        result = child(
            args.child, args.input, args.batch_size, breakdown=args.breakdown, profile=args.profile
        )
        _common.print_json(result)
        return
    if args.repeat < 1 or args.prospects < 1 or args.events < args.prospects:
        parser.error("need --repeat >= 1, --prospects >= 1 and --events >= --prospects")
    result = measure(args)
    if args.json:
        _common.print_json(result)
    else:
        print_report(result)


if __name__ == "__main__":
    main()
