"""What the live demo reads while it runs: the flow's progress in Redis, the gateway's counters.

Kept apart from the display (`view`) because this side touches Redis and HTTP text while the
display is a pure function of what was read (`Outcome`), so either can change alone. Nothing
here writes to Redis but the watcher's own consumer group, which it moves on so that the flow's
trimming never removes an entry before the watcher has seen it; `Outcome.collect` writes the
run's outputs to files once the flow has stopped.
"""

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import msgspec
import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families

from connectors.keys import OUT_CHANNELS, Keys
from connectors.redis_source import ensure_group
from dataflows.demo.sender import SenderCounts, group_name
from dataflows.demo.simulate import EventDict
from dataflows.demo.tape import Tape
from operators.records import Command, Decision
from operators.timeutil import parse_ts

PROVIDER_IDS: Final = ("sendgrid", "twilio")  # the gateway's ids start with the provider
SCAN: Final = 1001  # backlogs are counted up to this many entries ("1,000+")


def entry_ms(entry_id: bytes) -> int:
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
                pipe.xrange(stream, min=b"(" + info["last-delivered-id"], count=SCAN)
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
                self.latencies.append(max(0, entry_ms(entry_id) - ts))
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
            (entry_ms(i), int(i.split(b"-")[1]), f[b"command"])
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
