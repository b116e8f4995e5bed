"""What the live demo shows: progress read from Redis and from the gateway's `/metrics`, the
in-place panel, the final summary.

The final summary reuses the replay demo's tables and timelines (`dataflows.demo`), so both demos
read alike; it adds what only a live run has: the sender's answers and the signed callbacks that
carried them, what the gateway made of them, latency and backlog.
"""

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from connectors.keys import OUT_CHANNELS, Keys
from connectors.redis_source import ensure_group
from dataflows.demo import CHANNEL_COLUMNS, commands_table, held_table, timeline
from dataflows.demo_tape import Tape
from dataflows.replay import ReplayResult
from dataflows.sender import SenderCounts, group_name
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
PROVIDER_IDS: Final = ("sendgrid", "twilio")  # the gateway's ids start with the provider
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
    """The flow's progress as Redis shows it: outputs so far, backlogs, event→decision latency,
    and the events that arrived through the gateway.

    Latency is measured for decisions about events of this run: the decision's stream entry time
    minus its `ts`, which for a re-timed event is the moment it was published. The event streams
    are tailed: an entry that is not one of the publisher's `published` lines came through the
    gateway. The flow trims the entries every consumer group has read, so the watcher keeps a
    group of its own (`<prefix>-demo-watcher`, moved on with XGROUP SETID as it reads, never
    pending): nothing is trimmed before the watcher has seen it.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        since_ms: int,
        *,
        published: frozenset[bytes] = frozenset(),
        stories: Collection[str] = (),
    ) -> None:
        self.client = client
        self._r: Any = client
        self._keys = keys
        self._since = since_ms
        self._cursor = "-"
        self._tails = ["-"] * keys.shards
        self._published = published
        self._stories = frozenset(stories)
        self._group = f"{keys.prefix}-demo-watcher"
        self.commands: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()
        self.latencies: list[int] = []
        self.events_backlog = 0  # published, not yet acknowledged by the flow
        self.commands_backlog = 0  # emitted, not yet carried out by the sender
        self.arrived: list[EventDict] = []  # through the gateway, in each shard's order
        self.arrived_by: Counter[str] = Counter()  # by id origin: sendgrid, twilio, first-party
        self.story_events: list[EventDict] = []
        self.refreshes = 0

    @property
    def drained(self) -> bool:
        return self.refreshes > 0 and self.events_backlog == 0 and self.commands_backlog == 0

    def refresh(self) -> None:
        """One look at Redis: two pipelined round trips (the second needs the first's ids)."""
        keys = self._keys
        if self.refreshes == 0:
            for shard in range(keys.shards):
                ensure_group(self.client, keys.events(shard), self._group)
        groups = [(keys.events(n), keys.group) for n in range(keys.shards)]
        groups += [(keys.commands(ch), group_name(keys, ch)) for ch in OUT_CHANNELS]
        pipe = self._r.pipeline(transaction=False)
        for stream, _ in groups:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)  # an error reply for a stream not created yet
        pipe.xrange(keys.decisions, min=self._cursor, count=20_000)
        for shard, tail in enumerate(self._tails):
            pipe.xrange(keys.events(shard), min=tail, count=20_000)
        replies = pipe.execute(raise_on_error=False)
        tails = replies[len(replies) - keys.shards :]
        replies = replies[: len(replies) - keys.shards]
        lengths = [n if isinstance(n, int) else 0 for n in replies[0:-1:2]]
        listed = replies[1:-1:2]
        infos = [_group(info, group) for info, (_, group) in zip(listed, groups, strict=True)]
        for channel, length in zip(OUT_CHANNELS, lengths[keys.shards :], strict=True):
            self.commands[channel] = length
        for shard, entries in enumerate(tails):
            self._events(shard, entries if isinstance(entries, list) else [])
        pipe = self._r.pipeline(transaction=False)
        for (stream, _), info in zip(groups, infos, strict=True):
            if info is not None:
                pipe.xrange(stream, min=b"(" + info["last-delivered-id"], count=_SCAN)
        seen = [(keys.events(n), tail[1:]) for n, tail in enumerate(self._tails) if tail != "-"]
        for stream, last in seen:
            pipe.xgroup_setid(stream, self._group, id=last)
        undelivered = iter(pipe.execute())  # the XGROUP SETID replies come last
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

    def _events(self, shard: int, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for _, fields in entries:
            raw = fields.get(b"event", b"")
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a malformed line of the publisher's
            if not isinstance(event, dict):
                continue
            if event.get("prospect") in self._stories:
                self.story_events.append(event)
            if raw not in self._published:
                self.arrived.append(event)
                self.arrived_by[origin(str(event.get("id", "")))] += 1
        if entries:
            self._tails[shard] = "(" + entries[-1][0].decode()

    def latency(self, q: float) -> int | None:
        values = sorted(self.latencies)
        return values[int(q * (len(values) - 1))] if values else None


def origin(event_id: str) -> str:
    """Where an event that came through the gateway was made, by its id: the gateway derives
    `sendgrid:…` and `twilio:…` ids from the provider's own; first-party events keep theirs."""
    head = event_id.split(":", 1)[0]
    return head if head in PROVIDER_IDS else "first-party"


@dataclass(frozen=True)
class GatewayCounts:
    """The gateway's counters, read from its `/metrics`."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (provider, status)
    appended: Counter[str] = field(default_factory=Counter)  # by contract type
    ignored: Counter[str] = field(default_factory=Counter)  # by provider kind
    refused: int = 0  # signature failures
    unknown: int = 0  # unknown prospects
    dead: int = 0


def gateway_counts(text: str) -> GatewayCounts:
    """The counters of one `/metrics` page (Prometheus text format)."""
    counts = GatewayCounts()
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            n, labels = int(sample.value), sample.labels
            name = sample.name.removeprefix("touchflow_gateway_").removesuffix("_total")
            if name == "requests":
                counts.requests[labels["provider"], labels["status"]] += n
            elif name == "events_appended":
                counts.appended[labels["type"]] += n
            elif name == "provider_events_ignored":
                counts.ignored[labels["kind"]] += n
            else:
                totals[name] += n
    refused, unknown = totals["signature_failures"], totals["unknown_prospects"]
    return replace(counts, refused=refused, unknown=unknown, dead=totals["dead_letters"])


@dataclass
class Outcome:
    """A live run as the display and the summary see it; `collect` adds the final outputs."""

    url: str
    gateway_url: str
    seed: int
    flow_pid: int
    started: float
    seconds: float
    now: float
    tape: Tape
    published: int
    stories_published: list[str]
    watcher: Watcher
    sender: SenderCounts
    sender_scheduled: int
    gateway: GatewayCounts
    flow_status: int | None
    interrupted: bool
    out_dir: Path
    commands: list[Command] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)

    def collect(self, client: redis.Redis, keys: Keys) -> None:
        """Read every output from Redis (after the flow stopped) and write them to files, with
        the events that arrived through the gateway."""
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
        out = self.out_dir
        (out / "commands.jsonl").write_bytes(b"".join(c + b"\n" for *_, c in raw))
        (out / "decisions.jsonl").write_bytes(b"".join(d + b"\n" for d in decisions))
        dead = (orjson.dumps({"event": e, "reason": why}) + b"\n" for e, why in self.dead)
        (out / "dead_letter.jsonl").write_bytes(b"".join(dead))
        arrived = (orjson.dumps(e) + b"\n" for e in self.watcher.arrived)
        (out / "gateway_events.jsonl").write_bytes(b"".join(arrived))


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
    answers = _answers(o)
    grid.add_row("answers", " · ".join(answers[:4]))
    grid.add_row("", " · ".join(answers[4:]))
    grid.add_row("posted", _callbacks(o))
    grid.add_row("gateway", _requests(o))
    appended = _appended(o)
    grid.add_row("", f"{appended[0]} · {appended[1]}" if appended[1] else appended[0])
    grid.add_row("", appended[2])
    grid.add_row("", _arrived(o))
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
        title=f"touchflow demo · live on {o.url} · flow pid {o.flow_pid} · gateway {o.gateway_url}",
        title_align="left",
        subtitle="Ctrl-C stops cleanly",
        subtitle_align="right",
        box=box.ROUNDED,
    )


def _read(o: Outcome) -> str:
    """What the sender read: its consumer groups see every channel, handoffs included."""
    handoffs = o.sender.commands["rep"]
    return (
        f"{o.sender.commands.total():,} commands read (a consumer group per channel; "
        f"{handoffs:,} rep handoffs only acked)"
    )


def _answers(o: Outcome) -> list[str]:
    return [f"{t} {o.sender.answers[t]:,}" for t in ANSWER_TYPES]


def _callbacks(o: Outcome) -> str:
    """What the sender posted, by endpoint (from its own counts)."""
    by: Counter[str] = Counter()
    for (endpoint, _status), n in o.sender.requests.items():
        by[endpoint] += n
    names = {"sendgrid": "sendgrid", "twilio": "twilio", "events": "first-party events"}
    parts = [f"{label} {by[name]:,}" for name, label in names.items() if by[name]]
    retried = f" · {o.sender.retried:,} answers retried" if o.sender.retried else ""
    return f"{by.total():,} signed callbacks: " + " · ".join(parts) + retried


def _requests(o: Outcome) -> str:
    """The gateway's own count of the requests it answered, by provider and status."""
    g = o.gateway
    by: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for (provider, status), n in g.requests.items():
        by[provider] += n
        statuses[status] += n
    parts = " · ".join(f"{provider} {n:,}" for provider, n in sorted(by.items()))
    if set(statuses) <= {"200"}:
        answers = "(all 200)"
    else:
        answers = "(" + " · ".join(f"{st}: {n:,}" for st, n in sorted(statuses.items())) + ")"
    refused = f" · {g.refused:,} bad signatures" if g.refused else ""
    return f"answered {g.requests.total():,}: {parts or '·'} {answers}{refused}"


def _appended(o: Outcome) -> list[str]:
    """What the gateway appended, by contract type (two lines), and what it only counted."""
    g = o.gateway
    kinds = [f"{t} {n:,}" for t, n in sorted(g.appended.items(), key=lambda kv: (-kv[1], kv[0]))]
    ignored = " · ".join(f"{kind} {n:,}" for kind, n in g.ignored.most_common(3))
    unknown = f" · {g.unknown:,} for unknown prospects" if g.unknown else ""
    return [
        f"appended {g.appended.total():,} events: " + " · ".join(kinds[:4]),
        " · ".join(kinds[4:]),
        f"ignored {g.ignored.total():,} without contract meaning ({ignored or '·'}){unknown}",
    ]


def _arrived(o: Outcome) -> str:
    """What the streams show: events that came through the gateway, by their ids' origin."""
    by = o.watcher.arrived_by
    names = (*PROVIDER_IDS, "first-party")
    return f"on the streams: {by.total():,} through it, by id: " + " · ".join(
        f"{name} {by[name]:,}" for name in names
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
        "back-fill); the touch_sent lines are the sender confirming their commands through the "
        "gateway, just now.",
        style="dim",
    )
    result = ReplayResult(commands=o.commands, decisions=o.decisions)
    ended = datetime.fromtimestamp(o.now, UTC)
    for pid in tape.stories:
        if pid in STORIES and pid in o.stories_published:
            timeline(console, pid, o.watcher.story_events, result, ended=ended)


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
    answers = _answers(o)
    lines += [
        f"sender    {_read(o)}",
        f"          {o.sender.answers.total():,} answers{scheduled}: " + " · ".join(answers[:4]),
        "          " + " · ".join(answers[4:]),
        f"          sent as {_callbacks(o)}",
        f"gateway   {o.gateway_url} {_requests(o)}",
        *(f"          {line}" for line in _appended(o) if line),
        f"          {_arrived(o)}",
        f"files     {o.out_dir}/: events, answers, callbacks, gateway_events, commands,",
        "          decisions, dead_letter (.jsonl); flow.log, gateway.log, gateway_metrics.txt",
    ]
    head = [Text(line) for line in lines]
    head[4:4] = [Text(line, style="dim") for line in rejected]
    return head
