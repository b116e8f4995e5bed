"""`touchflow demo --replay`: one simulated day, replayed through the real dataflow, summarised.

The fast, deterministic sibling of the live demo (`dataflows.demo_live`, plain `touchflow demo`):
no Redis, no processes, writes every input and output to files, and prints about one screen:
totals, what was sent and why, what the rules held back, and the story prospects' timelines, which
show the rules at work on one person at a time. The day is fixed, so a seed always names the same
output. The tables and timelines here are shared with the live demo's final summary.
"""

import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dataflows.replay import ReplayResult, replay
from dataflows.replay import write_jsonl as write_records
from dataflows.simulate import SITE, STORIES, EventDict, generate, write_jsonl
from operators.engine import Engine
from operators.policy import load_policy
from operators.records import Command, DeadLetter, Decision
from operators.timeutil import to_ms

DEMO_START: Final = datetime(2026, 3, 3, tzinfo=UTC)  # a Tuesday, days before any DST change
MALFORMED_FRACTION: Final = 0.003
CHANNEL_COLUMNS: Final = ("email", "sms", "phone", "chat", "linkedin", "rep")
HELD_ROWS: Final = 8  # the rest are summed into one row, to keep the summary to a screen
_STYLE: Final = {"sent": "green", "deferred": "yellow", "blocked": "red"}
_MARK: Final = {"sent": "→", "deferred": "…", "blocked": "✗"}


def check_prospects(prospects: int) -> None:
    if prospects < 1:
        msg = f"demo: --prospects must be at least 1, got {prospects}"
        raise ValueError(msg)


def summary_console() -> Console:
    """A console for the summary: a file or pipe has no width, 100 columns keep timelines whole."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 100)


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


def _reason_group(reason: str) -> str:
    """Campaign requests as one row: there are many campaigns and one rule set for them."""
    return "request:*" if reason.startswith("request:") else reason


def commands_table(commands: list[Command]) -> Table:
    """Commands by reason (rows) and channel (columns): what the day's touches answered."""
    counts = Counter((_reason_group(c.reason), c.channel) for c in commands)
    by_reason = Counter(_reason_group(c.reason) for c in commands)
    table = Table(
        title="Commands by reason and channel",
        title_justify="left",
        box=box.SIMPLE,
        show_edge=False,
    )
    table.add_column("reason")
    for channel in CHANNEL_COLUMNS:
        table.add_column(channel, justify="right")
    table.add_column("total", justify="right", style="bold")
    for reason, total in by_reason.most_common():
        cells = [str(counts[reason, ch] or "·") for ch in CHANNEL_COLUMNS]
        table.add_row(reason, *cells, str(total))
    return table


def held_table(decisions: list[Decision]) -> Table:
    """Deferred and blocked decisions by the rule that stopped them."""
    held = Counter((d.rule or "?", d.verdict) for d in decisions if d.verdict != "sent")
    rules = Counter(d.rule or "?" for d in decisions if d.verdict != "sent")
    table = Table(title="Held back, by rule", title_justify="left", box=box.SIMPLE, show_edge=False)
    table.add_column("rule")
    table.add_column("deferred", justify="right", style="yellow")
    table.add_column("blocked", justify="right", style="red")
    ranked = rules.most_common()
    for rule, _ in ranked[:HELD_ROWS]:
        table.add_row(rule, str(held[rule, "deferred"] or "·"), str(held[rule, "blocked"] or "·"))
    if len(ranked) > HELD_ROWS:
        rest = ranked[HELD_ROWS:]
        deferred = sum(held[r, "deferred"] for r, _ in rest)
        blocked = sum(held[r, "blocked"] for r, _ in rest)
        table.add_row(f"({len(rest)} more rules)", str(deferred or "·"), str(blocked or "·"))
    return table


_HIDDEN: Final = frozenset({"id", "type", "prospect", "ts", "email", "lead_source", "account"})


def timeline(
    console: Console,
    pid: str,
    events: list[EventDict],
    result: ReplayResult,
    *,
    ended: datetime | None = None,
) -> None:
    """Every event and every decision for one prospect, in time order, one short line each.

    Times are the prospect's local time, because that is what quiet hours are about. With
    `ended` (a live run), a deferral due after it says it was still waiting.
    """
    zone_name, blurb = STORIES[pid]
    zone = ZoneInfo(zone_name)
    commands = {c.id: c for c in result.commands if c.prospect == pid}
    rows: list[tuple[datetime, int, int, Text]] = []
    for i, event in enumerate(e for e in events if e["prospect"] == pid):
        line = Text.assemble(("• ", "dim"), (f"{event['type']:<15}", "cyan"), _describe(event))
        rows.append((_when(str(event["ts"])), 0, i, line))
    for i, d in enumerate(d for d in result.decisions if d.prospect == pid):
        style = _STYLE[d.verdict]
        line = Text.assemble((f"{_MARK[d.verdict]} {d.channel:<8} {d.verdict:<9}", style))
        if d.rule is not None:
            line.append(f"{d.rule} ", style=style)
        if d.until is not None:
            until = _when(d.until)
            line.append(f"to {until.astimezone(zone):%a %H:%M} ", style=style)
            if ended is not None and until > ended:
                line.append("(still waiting at the end) ", style="dim")
        line.append(f"· {d.reason}")
        command = commands.get(d.command or "")
        if command is not None and command.backup:
            line.append(f" (backup {command.backup})", style="dim")
        rows.append((_when(d.ts), 1, i, line))
    rows.sort(key=lambda row: row[:3])
    console.print(Text.assemble(("\n" + pid, "bold"), f"  ({zone_name}: {blurb})"))
    for at, _, _, line in rows:
        stamp = Text(f"  {at.astimezone(zone):%a %H:%M}  ", style="dim")
        console.print(stamp + line, no_wrap=True, overflow="ellipsis")


def _describe(event: EventDict) -> str:
    """An event's own fields, short: site urls without the host, no contact details."""
    parts = []
    for key, value in event.items():
        if key in _HIDDEN:
            continue
        text = str(value).removeprefix(SITE) if key == "url" else str(value)
        if key == "command":  # a 32-digit id: its start is enough to match it by eye
            text = text[:8] + "…"
        parts.append(f"{key}={text!r}" if key == "text" else f"{key}={text}")
    return " ".join(parts)


def _when(ts: str) -> datetime:
    """An RFC 3339 timestamp from our own files (always with an offset) as an aware datetime."""
    return datetime.fromisoformat(ts)
