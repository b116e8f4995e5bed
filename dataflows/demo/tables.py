"""What both demos print at the end: the summary console, the two tables, the story timelines.

Shared by `touchflow demo --replay` (`replay_demo`) and the live demo's final summary (`view`),
so both demos read alike and the live one needs nothing of the replay's; the tables are built
from the flow's own records (`Command`, `Decision`), whichever way they were collected.
"""

import sys
from collections import Counter
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dataflows.demo.simulate import SITE, STORIES, EventDict
from dataflows.replay import ReplayResult
from operators.records import Command, Decision

CHANNEL_COLUMNS: Final = ("email", "sms", "phone", "chat", "linkedin", "rep")
HELD_ROWS: Final = 8  # the rest are summed into one row, to keep the summary to a screen
_STYLE: Final = {"sent": "green", "deferred": "yellow", "blocked": "red"}
_MARK: Final = {"sent": "→", "deferred": "…", "blocked": "✗"}


def summary_console() -> Console:
    """A console for the summary: a file or pipe has no width, 100 columns keep timelines whole."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 100)


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
