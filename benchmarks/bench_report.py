"""`touchflow report` over a file vs `touchflow replay` of the same file (issue 14's target).

What is measured
    report: the time `touchflow report EVENTS --until T --json` spends after parsing its
    arguments: the report replay (`dataflows.report_replay`: the engine per prospect, each event
    isolated, the scorecard's `Tally` fed as it goes), the scorecard, and its JSON on a sink.
    `report-csv` adds `--csv DIR` (the four tables and prospects.csv, one row per prospect).

Baseline (same run, same input, interleaved)
    replay: what `touchflow replay EVENTS --until T` spends: `dataflows.replay.replay` (the
    Bytewax dataflow, then every output collated in canonical order) and the commands written as
    JSON Lines (to /dev/null). Target: report <= 1.5 x replay.

    Also: `engine` is the report replay with no tally (the same loop calling
    `isolation.apply_isolated`): report - engine is what counting costs per event, a first look
    at what the scorecard will cost the live flow.

Each run is a fresh child process; the sides alternate and each runs `--repeat` times (median).
Also reported: the MessagePack size of the per-prospect facts (mean, p99, max) and of the
global counts.

Usage: bench_report.py [--json] [--events N] [--prospects N] [--repeat N]
       [--input FILE | --save-input FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import _common
import msgspec

MODES: Final = ("replay", "report", "report-csv", "engine")
UNTIL: Final = "2024-05-20T00:00:00Z"  # two weeks after the generated day: sequences run out


def child(mode: str, path: Path) -> dict[str, Any]:
    """One measured run."""
    from dataflows.replay import replay, write_jsonl
    from operators.engine import Engine
    from operators.policy import load_policy
    from operators.timeutil import parse_ts

    policy = load_policy()
    until = parse_ts(UNTIL)
    result: dict[str, Any] = {"mode": mode}
    start = time.perf_counter()
    if mode == "replay":
        out = replay(path, Engine(policy), until=until)
        with open(os.devnull, "wb") as sink:
            write_jsonl(out.commands, sink)
        result["commands"] = len(out.commands)
        result["decisions"] = len(out.decisions)
    elif mode in ("report", "report-csv"):
        from dataflows.report import compute, replay_rows, write_csv

        report = compute(path, policy, until=until)
        with open(os.devnull, "wb") as sink:
            sink.write(msgspec.json.encode(report.card))
        if mode == "report-csv":
            target = Path(tempfile.mkdtemp(prefix="touchflow-bench-csv-"))
            try:
                write_csv(target, report.card, replay_rows(report))
            finally:
                shutil.rmtree(target, ignore_errors=True)
        result["elapsed_s"] = time.perf_counter() - start
        result["touches"] = report.card["overall"]["touches"]
        result.update(_sizes(report))
        return result
    elif mode == "engine":
        result["events"] = _engine_only(path, policy, until)
    else:
        msg = f"bench_report: unknown mode {mode!r}"
        raise ValueError(msg)
    result["elapsed_s"] = time.perf_counter() - start
    return result


def _sizes(report: Any) -> dict[str, Any]:
    encode = msgspec.msgpack.encode
    sizes = sorted(len(encode(f)) for f in report.lane.facts.values())
    n = len(sizes)
    return {
        "prospects": n,
        "facts_bytes_mean": sum(sizes) / n if n else 0,
        "facts_bytes_p50": sizes[n // 2] if n else 0,
        "facts_bytes_p99": sizes[min(n - 1, int(n * 0.99))] if n else 0,
        "facts_bytes_max": sizes[-1] if n else 0,
        "counts_bytes": len(encode(report.lane.tally.counts)),
    }


def _engine_only(path: Path, policy: Any, until: int) -> int:
    """The report replay's loop without the tally: decode, `apply_isolated`, timers at the end."""
    from operators.engine import Engine
    from operators.intake import EventReader
    from operators.isolation import apply_isolated, fire_due_isolated
    from operators.state import ProspectState

    engine = Engine(policy)
    reader = EventReader(policy.limits, frozenset(policy.sequences))
    states: dict[str, ProspectState] = {}
    events = 0
    with path.open("rb") as f:
        for line in f:
            raw = line.strip()
            if not raw:
                continue
            event = reader.read(raw)
            if isinstance(event, str):
                continue
            events += 1
            state = states.get(event.prospect)
            if state is None:
                state = states[event.prospect] = ProspectState(prospect=event.prospect)
            apply_isolated(engine, state, event, [], [])
    for state in states.values():
        fire_due_isolated(engine, state, until, [], [])
    return events


def run_child(mode: str, path: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--input", str(path)]
    done = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    if done.returncode != 0:
        msg = f"bench_report: {mode} run failed with exit code {done.returncode}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="touchflow-bench-"))
    try:
        if args.input is not None:
            path, generator = args.input, f"file {args.input}"
        else:
            path = args.save_input or workdir / "events.jsonl"
            _say(args, f"generating ~{args.events:,} events for {args.prospects:,} prospects ...")
            generator = _common.write_events(path, args.prospects, args.events, seed=args.seed)
        lines = _common.count_lines(path)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for r in range(args.repeat):
            order = MODES if r % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                _say(args, f"round {r + 1}/{args.repeat}: {mode} ...")
                runs[mode].append(run_child(mode, path))
    finally:
        if args.input is None and args.save_input is None:
            shutil.rmtree(workdir, ignore_errors=True)
    med = {m: _common.median([r["elapsed_s"] for r in runs[m]]) for m in MODES}
    sizes = {k: v for k, v in runs["report"][0].items() if k.startswith(("facts", "counts"))}
    return {
        "benchmark": "bench_report",
        "machine": _common.machine(),
        "input": {"lines": lines, "generator": generator, "until": UNTIL},
        "repeat": args.repeat,
        "seconds_median": med,
        "seconds_all": {m: [round(r["elapsed_s"], 3) for r in runs[m]] for m in MODES},
        "ratio_report_over_replay": med["report"] / med["replay"],
        "ratio_report_csv_over_replay": med["report-csv"] / med["replay"],
        "counting_us_per_event": (med["report"] - med["engine"]) / lines * 1e6,
        "counting_share_of_engine_loop": (med["report"] - med["engine"]) / med["engine"],
        "prospects": runs["report"][0]["prospects"],
        "touches": runs["report"][0]["touches"],
        **sizes,
        "target": "report <= 1.5 x replay",
    }


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--prospects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--save-input", type=Path, default=None)
    parser.add_argument("--child", choices=MODES, default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.input)))
        return 0
    result = measure(args)
    if args.json:
        _common.print_json(result)
        return 0
    med = result["seconds_median"]
    _common.print_table(
        f"report vs replay, {result['input']['lines']:,} lines (median of {args.repeat})",
        ["side", "seconds", "x replay"],
        [(m, f"{med[m]:.2f}", f"{med[m] / med['replay']:.2f}") for m in MODES],
    )
    print(
        f"counting: {result['counting_us_per_event']:.2f} us/event "
        f"({result['counting_share_of_engine_loop']:.1%} of the engine loop); facts "
        f"{result['facts_bytes_mean']:.0f} B/prospect mean, p99 {result['facts_bytes_p99']}, "
        f"max {result['facts_bytes_max']}; counts {result['counts_bytes']} B"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
