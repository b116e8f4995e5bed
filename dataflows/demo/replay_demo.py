"""`touchflow demo --replay`: one simulated day, replayed through the real dataflow, summarised.

The fast, deterministic sibling of the live demo (`live_demo`, plain `touchflow demo`):
no Redis, no processes, writes every input and output to files, and prints about one screen:
totals, what was sent and why, what the rules held back, and the story prospects' timelines, which
show the rules at work on one person at a time. The day is fixed, so a seed always names the same
output. Its tables and timelines (`tables`) are shared with the live demo's final summary.
"""

import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from rich.console import Console

from dataflows.demo.simulate import STORIES, EventDict, generate, write_jsonl
from dataflows.demo.tables import commands_table, held_table, summary_console, timeline
from dataflows.replay import ReplayResult, replay
from dataflows.replay import write_jsonl as write_records
from operators.engine import Engine
from operators.policy import load_policy
from operators.records import Command, DeadLetter, Decision
from operators.timeutil import to_ms

DEMO_START: Final = datetime(2026, 3, 3, tzinfo=UTC)  # a Tuesday, days before any DST change
MALFORMED_FRACTION: Final = 0.003


def check_prospects(prospects: int) -> None:
    if prospects < 1:
        msg = f"demo: --prospects must be at least 1, got {prospects}"
        raise ValueError(msg)


def run_demo(
    *,
    prospects: int,
    seed: int,
    config: Path | None,
    out_dir: Path,
    console: Console | None = None,
) -> int:
    """Simulate, replay and summarise one day; files go to `out_dir`. Returns the exit status."""
    check_prospects(prospects)
    engine = Engine(load_policy(config))  # a bad config fails before any work
    console = console or summary_console()
    out_dir.mkdir(parents=True, exist_ok=True)
    events = generate(prospects, seed=seed, start=DEMO_START)
    events_path = out_dir / "events.jsonl"
    lines = write_jsonl(events, events_path, malformed_fraction=MALFORMED_FRACTION, seed=seed)
    began = time.perf_counter()
    result = replay(events_path, engine, until=to_ms(DEMO_START + timedelta(days=2)))
    elapsed = time.perf_counter() - began
    _write(out_dir / "commands.jsonl", result.commands)
    _write(out_dir / "decisions.jsonl", result.decisions)
    _write(out_dir / "dead_letter.jsonl", result.dead_letters)
    _totals(console, events, lines, result, elapsed, out_dir, seed)
    console.print()
    console.print(commands_table(result.commands))
    console.print()
    console.print(held_table(result.decisions))
    present = {e["prospect"] for e in events}
    for pid in STORIES:
        if pid in present:  # fewer prospects than stories: only the first stories exist
            timeline(console, pid, events, result)
    return 0


def _write(path: Path, records: Iterable[Command | Decision | DeadLetter]) -> None:
    with path.open("wb") as f:
        write_records(records, f)


def _totals(
    console: Console,
    events: list[EventDict],
    lines: int,
    result: ReplayResult,
    elapsed: float,
    out_dir: Path,
    seed: int,
) -> None:
    """What went in and what came out; redeliveries and malformed lines are counted apart."""
    ids = len({e["id"] for e in events})
    prospects = len({e["prospect"] for e in events})
    rate = lines / elapsed if elapsed > 0 else 0.0
    console.rule(f"touchflow demo · {DEMO_START:%Y-%m-%d} (one day, UTC) · seed {seed}")
    console.print(
        f"events    {lines:,} lines: {ids:,} distinct, {len(events) - ids:,} redelivered, "
        f"{lines - len(events):,} malformed\n"
        f"prospects {prospects:,} · commands {len(result.commands):,} · "
        f"decisions {len(result.decisions):,} · dead letters {len(result.dead_letters):,}\n"
        f"replay    {elapsed:.2f} s · {rate:,.0f} events/s · files in {out_dir}/"
    )
    reasons = Counter(letter.reason for letter in result.dead_letters)
    for reason, count in reasons.most_common(5):
        console.print(
            f"  rejected {count:>3} x {reason}", style="dim", no_wrap=True, overflow="ellipsis"
        )
