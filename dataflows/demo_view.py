"""What the live demo shows: progress read from Redis, the in-place panel, the final summary.

The final summary reuses the replay demo's tables and timelines (`dataflows.demo`), so both demos
read alike; it adds what only a live run has: the sender's answers, latency and backlog.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import orjson
import redis
from rich import box
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from connectors.keys import OUT_CHANNELS, Keys, shard_of
from dataflows.demo import CHANNEL_COLUMNS, commands_table, held_table, timeline
from dataflows.demo_tape import Tape
from dataflows.replay import ReplayResult
from dataflows.sender import group_name
from dataflows.simulate import STORIES, EventDict
from operators.records import Command, Decision
from operators.timeutil import parse_ts

ANSWER_TYPES: Final = (
    "touch_sent",
    "touch_failed",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "bounce",
    "call_outcome",
)
_VERDICTS: Final = (("sent", "green"), ("deferred", "yellow"), ("blocked", "red"))
_SCAN: Final = 1001  # backlogs are counted up to this many entries ("1,000+")


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _group(listed: Any, name: str) -> dict[str, Any] | None:
    """A consumer group's XINFO GROUPS entry, or None (no such group or stream yet)."""
    if not isinstance(listed, list):
        return None
    return next((g for g in listed if g["name"].decode() == name), None)


class Watcher:
    """The flow's progress as Redis shows it: outputs so far, backlogs, event→decision latency.

    Latency is measured for decisions about events of this run: the decision's stream entry time
    minus its `ts`, which for a re-timed event is the moment it was published.
    """

    def __init__(self, client: redis.Redis, keys: Keys, since_ms: int) -> None:
        self.client = client
        self._r: Any = client
        self._keys = keys
        self._since = since_ms
        self._cursor = "-"
        self.commands: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()
        self.latencies: list[int] = []
        self.events_backlog = 0  # published, not yet acknowledged by the flow
        self.commands_backlog = 0  # emitted, not yet carried out by the sender
        self.refreshes = 0

    @property
    def drained(self) -> bool:
        return self.refreshes > 0 and self.events_backlog == 0 and self.commands_backlog == 0

    def refresh(self) -> None:
        """One look at Redis: two pipelined round trips (the second needs the first's ids)."""
        keys = self._keys
        groups = [(keys.events(n), keys.group) for n in range(keys.shards)]
        groups += [(keys.commands(ch), group_name(keys, ch)) for ch in OUT_CHANNELS]
        pipe = self._r.pipeline(transaction=False)
        for stream, _ in groups:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)  # an error reply for a stream not created yet
        pipe.xrange(keys.decisions, min=self._cursor, count=20_000)
        replies = pipe.execute(raise_on_error=False)
        lengths = [n if isinstance(n, int) else 0 for n in replies[0:-1:2]]
        listed = replies[1:-1:2]
        infos = [_group(info, group) for info, (_, group) in zip(listed, groups, strict=True)]
        for channel, length in zip(OUT_CHANNELS, lengths[keys.shards :], strict=True):
            self.commands[channel] = length
        pipe = self._r.pipeline(transaction=False)
        for (stream, _), info in zip(groups, infos, strict=True):
            if info is not None:
                pipe.xrange(stream, min=b"(" + info["last-delivered-id"], count=_SCAN)
        undelivered = iter(pipe.execute())
        backlog = [
            length if info is None else int(info["pending"]) + len(next(undelivered))
            for length, info in zip(lengths, infos, strict=True)
        ]
        self.events_backlog = sum(backlog[: keys.shards])
        self.commands_backlog = sum(backlog[keys.shards :])
        self._decisions(replies[-1])
        self.refreshes += 1

    def _decisions(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for entry_id, fields in entries:
            decision = orjson.loads(fields[b"decision"])
            verdict = decision["verdict"]
            self.verdicts[verdict] += 1
            if verdict != "sent":
                self.rules[decision["rule"] or "?"] += 1
            ts = parse_ts(decision["ts"])
            if ts >= self._since:
                self.latencies.append(max(0, _entry_ms(entry_id) - ts))
        if entries:
            self._cursor = "(" + entries[-1][0].decode()

    def latency(self, q: float) -> int | None:
        values = sorted(self.latencies)
        return values[int(q * (len(values) - 1))] if values else None


@dataclass
class Outcome:
    """A live run as the display and the summary see it; `collect` adds the final outputs."""

    url: str
    seed: int
    flow_pid: int
    started: float
    seconds: float
    now: float
    tape: Tape
    published: int
    stories_published: list[str]
    watcher: Watcher
    sender_commands: Counter[str]
    sender_answers: Counter[str]
    sender_scheduled: int
    flow_status: int | None
    interrupted: bool
    out_dir: Path
    commands: list[Command] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    story_events: list[EventDict] = field(default_factory=list)

    def collect(self, client: redis.Redis, keys: Keys) -> None:
        """Read every output from Redis (after the flow stopped) and write them to files."""
        r: Any = client
        raw = sorted(
            (_entry_ms(i), int(i.split(b"-")[1]), f[b"command"])
            for ch in OUT_CHANNELS
            for i, f in r.xrange(keys.commands(ch))
        )
        self.commands = [msgspec.json.decode(c, type=Command) for *_, c in raw]
        decisions = [f[b"decision"] for _, f in r.xrange(keys.decisions)]
        self.decisions = [msgspec.json.decode(d, type=Decision) for d in decisions]
        self.dead = [
            (f[b"event"].decode(errors="replace"), f[b"reason"].decode(errors="replace"))
            for _, f in r.xrange(keys.dead)
        ]
        for shard in sorted({shard_of(pid, keys.shards) for pid in self.tape.stories}):
            for _, f in r.xrange(keys.events(shard)):
                with_id = f.get(b"event", b"")
                if b'"demo-' not in with_id:
                    continue
                event = orjson.loads(with_id)
                if event.get("prospect") in self.tape.stories:
                    self.story_events.append(event)
        out = self.out_dir
        (out / "commands.jsonl").write_bytes(b"".join(c + b"\n" for *_, c in raw))
        (out / "decisions.jsonl").write_bytes(b"".join(d + b"\n" for d in decisions))
        dead = (orjson.dumps({"event": e, "reason": why}) + b"\n" for e, why in self.dead)
        (out / "dead_letter.jsonl").write_bytes(b"".join(dead))


def panel(o: Outcome) -> RenderableType:
    """The in-place display: one line per part of the system, updated a few times a second."""
    w = o.watcher
    elapsed = max(0.0, o.now - o.started)
    if elapsed < o.seconds:
        clock = f"{elapsed:.0f} s of {o.seconds:.0f} s"
    else:
        clock = f"done in {o.seconds:.0f} s · draining for {elapsed - o.seconds:.0f} s"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True, min_width=9)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    bar = Table.grid(padding=(0, 2))
    bar.add_row(
        ProgressBar(total=o.tape.lines, completed=o.published, width=30),
        f"{o.published:,} / {o.tape.lines:,} events · {clock}",
    )
    grid.add_row("published", bar)
    stories = " ".join(
        f"{pid} {'✓' if pid in o.stories_published else '·'}" for pid in o.tape.stories
    )
    if stories:
        grid.add_row("stories", stories)
    by_channel = " · ".join(f"{ch} {w.commands[ch]:,}" for ch in CHANNEL_COLUMNS)
    grid.add_row("commands", f"{w.commands.total():,}  ({by_channel})")
    verdicts = Text(f"{w.verdicts.total():,}  (")
    for n, (verdict, style) in enumerate(_VERDICTS):
        verdicts.append(f"{' · ' if n else ''}{verdict} {w.verdicts[verdict]:,}", style=style)
    grid.add_row("decisions", verdicts + ")")
    top = " · ".join(f"{rule} {n:,}" for rule, n in w.rules.most_common(4))
    grid.add_row("held by", top or "·")
    grid.add_row("sender", _read(o))
    answers = [f"{t} {o.sender_answers[t]:,}" for t in ANSWER_TYPES]
    grid.add_row("answers", " · ".join(answers[:4]))
    grid.add_row("", " · ".join(answers[4:]))
    p50, p95 = w.latency(0.5), w.latency(0.95)
    if p50 is not None:
        grid.add_row("latency", f"event → decision p50 {p50} ms, p95 {p95} ms")
    grid.add_row(
        "backlog",
        f"{_count(w.events_backlog)} events unacked (the flow acks at each checkpoint) · "
        f"{_count(w.commands_backlog)} commands unanswered",
    )
    return Panel(
        grid,
        title=f"touchflow demo · live on {o.url} · flow pid {o.flow_pid}",
        title_align="left",
        subtitle="Ctrl-C stops cleanly",
        subtitle_align="right",
        box=box.ROUNDED,
    )


def _read(o: Outcome) -> str:
    """What the sender read: its consumer groups see every channel, handoffs included."""
    handoffs = o.sender_commands["rep"]
    return (
        f"{o.sender_commands.total():,} commands read (a consumer group per channel; "
        f"{handoffs:,} rep handoffs only acked)"
    )


def _count(n: int) -> str:
    return f"{n:,}" if n < _SCAN - 1 else f"{_SCAN - 1:,}+"


def summary(console: Console, o: Outcome) -> None:
    """The final summary: what went in, what came out, what was held back, the stories."""
    began = datetime.fromtimestamp(o.started, UTC)
    console.rule(f"touchflow demo · live on Redis · {began:%Y-%m-%d %H:%M} UTC · seed {o.seed}")
    console.print(Text("\n").join(_head(o)), no_wrap=True, overflow="ellipsis")
    console.print(
        f"Each prospect's simulated day happens within {o.seconds:.0f} s of wall-clock time, "
        "so the 24-hour rules (cap.total.day, gap) hold back much more than in "
        "`touchflow demo --replay`, deferred touches come due after the demo, and quiet hours "
        "follow each prospect's local time right now.",
        style="dim",
    )
    console.print()
    console.print(commands_table(o.commands))
    console.print()
    console.print(held_table(o.decisions))
    tape = o.tape
    if not o.stories_published:
        return
    console.print(
        "\nStory prospects keep their scripted local times, on the most recent day the whole "
        "script fits before now, and are published in one go during the run (late, like a "
        "back-fill); the touch_sent lines are the sender confirming their commands, just now.",
        style="dim",
    )
    result = ReplayResult(commands=o.commands, decisions=o.decisions)
    ended = datetime.fromtimestamp(o.now, UTC)
    for pid in tape.stories:
        if pid in STORIES and pid in o.stories_published:
            timeline(console, pid, o.story_events, result, ended=ended)


def _head(o: Outcome) -> list[Text]:
    """Totals, one topic a line, each under 100 columns (a pipe or a file gets 100)."""
    tape, w = o.tape, o.watcher
    rate = o.published / o.seconds
    stop = "Ctrl-C, then SIGTERM" if o.interrupted else "SIGTERM"
    status = "?" if o.flow_status is None else str(o.flow_status)
    lines = [
        f"input     {tape.random_events + tape.malformed:,} events of {tape.prospects:,} "
        f"prospects, re-timed to now, published over {o.seconds:.0f} s ({rate:,.0f}/s)",
        f"          {tape.redelivered} redelivered, {tape.malformed} malformed",
    ]
    if o.published < tape.lines:
        elapsed = max(0.0, min(o.now - o.started, o.seconds))
        lines[0] = (
            f"input     {o.published:,} of {tape.lines:,} events published in {elapsed:.0f} s, "
            f"then stopped ({tape.prospects:,} prospects, re-timed to now)"
        )
    if tape.stories:
        count = sum(len(events) for events in tape.stories.values())
        below = " (below)" if o.stories_published else ""
        lines[-1] += f" · {len(tape.stories)} story prospects, {count} events{below}"
    lines.append(
        f"flow      touchflow run: {len(o.commands):,} commands · {len(o.decisions):,} "
        f"decisions · {len(o.dead):,} dead letters · {w.events_backlog} events unacked"
    )
    p50, p95 = w.latency(0.5), w.latency(0.95)
    latency = f"event→decision p50 {p50} ms, p95 {p95} ms · " if p50 is not None else ""
    lines.append(f"          {latency}{stop}: final checkpoint, exit {status}")
    rejected = [
        f"          rejected {count:>3} x {reason}"[:100]
        for reason, count in Counter(why for _, why in o.dead).most_common(3)
    ]
    scheduled = f", {o.sender_scheduled} cut short" if o.sender_scheduled else ""
    lines.append(f"sender    {_read(o)}")
    counts = [f"{t} {o.sender_answers[t]:,}" for t in ANSWER_TYPES]
    answers = f"{o.sender_answers.total():,} answers{scheduled}: "
    lines.append("          " + answers + " · ".join(counts[:4]))
    lines.append("          " + " · ".join(counts[4:]))
    lines.append(
        f"files     {o.out_dir}/ (events, answers, commands, decisions, dead_letter; flow.log)"
    )
    head = [Text(line) for line in lines]
    head[4:4] = [Text(line, style="dim") for line in rejected]
    return head
