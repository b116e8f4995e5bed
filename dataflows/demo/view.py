"""What the live demo shows: the in-place panel while it runs, the final summary after.

Functions of an `Outcome` alone (what `watch` read from Redis and the gateway's `/metrics`), so the
display can be rendered in tests without a running system. The final summary reuses the replay
demo's tables and timelines (`tables`), so both demos read alike; it adds what only a live run
has: the sender's answers and the signed callbacks that carried them, what the gateway made of
them, latency and backlog.
"""

from collections import Counter
from datetime import UTC, datetime
from typing import Final

from rich import box
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dataflows.demo.simulate import STORIES
from dataflows.demo.tables import CHANNEL_COLUMNS, commands_table, held_table, timeline
from dataflows.demo.watch import PROVIDER_IDS, SCAN, Outcome
from dataflows.replay import ReplayResult

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
    return f"{n:,}" if n < SCAN - 1 else f"{SCAN - 1:,}+"


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
