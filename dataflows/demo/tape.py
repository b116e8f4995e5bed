"""The live demo's input: a simulated day re-timed to wall-clock now, plus the story prospects.

Random prospects: `simulate.generate` makes one day of traffic; each event is re-timed to the
instant it is published, the day squeezed into the demo's few seconds, so its `ts` is the wall
clock (live mode's timers run on the wall clock, and a deferral due tomorrow stays pending).

Story prospects are about local clock times (alice's form at 23:00 in New York is what defers her
call to 08:00), so they keep their scripted local times, on the most recent day on which the whole
script lies in the past. Each story is published in one transaction, so the flow reads it in one
batch and applies it in event time, timers included, exactly as replay does; it arrives late, as
a back-fill would.

Every prospect with a phone gets a number of its own: the sender's simulated Twilio reports an
sms reply only by its From number, and the gateway gives it to every prospect holding that number
(`traffic` draws from a hundred numbers per area code, so prospects would share them). The tape's
`contacts` are what the sender reports as each prospect's address.
"""

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson
import redis

from connectors.keys import Keys, shard_of
from dataflows.demo.callbacks import Contact, contacts_from_lines
from dataflows.demo.simulate import STORIES, EventDict, generate, write_jsonl
from operators.timeutil import format_ts, parse_ts

DAY_START: Final = datetime(2026, 3, 3, tzinfo=UTC)  # the simulated day before re-timing
MALFORMED_FRACTION: Final = 0.003
STORY_AT: Final = (0.15, 0.35, 0.55)  # when, as a fraction of the run, each story is published
_MARGIN: Final = timedelta(minutes=1)  # a story ends at least this long before the run starts


@dataclass(frozen=True)
class Drop:
    """Lines published together at `at` seconds after the start; a story's in one MULTI."""

    at: float
    lines: tuple[tuple[int, bytes], ...]  # (shard, raw line)
    story: str | None = None


@dataclass
class Tape:
    """Everything the demo publishes, in publish order."""

    drops: list[Drop]
    random_events: int  # well-formed lines of random prospects (redeliveries included)
    redelivered: int  # of those, repeats of an id already sent (same content)
    malformed: int
    prospects: int  # random prospects
    stories: dict[str, list[EventDict]] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)  # from the profiles, by prospect

    @property
    def lines(self) -> int:
        return sum(len(d.lines) for d in self.drops)

    def published(self) -> frozenset[bytes]:
        """Every line the publisher sends, as sent: what on the streams did not come through
        the gateway."""
        return frozenset(line for d in self.drops for _, line in d.lines)


def build_tape(
    prospects: int, *, seed: int, start: float, seconds: float, keys: Keys, path: Path
) -> Tape:
    """The demo's input for a run publishing from `start` (epoch seconds) for `seconds`.

    `prospects` counts the stories, as in `generate`. Every line published is written to `path`.
    """
    story_ids = list(STORIES)[:prospects]
    randoms = prospects - len(story_ids)
    start_ms = int(start * 1000)
    day = generate(randoms, seed=seed, start=DAY_START, stories=False)
    day_ms = 86_400_000
    base = int(DAY_START.timestamp() * 1000)
    for event in day:  # generate made fresh dicts; a redelivery is a copy, re-timed alike
        t = parse_ts(str(event["ts"])) - base
        event["ts"] = format_ts(start_ms + t * int(seconds * 1000) // day_ms)
    now = datetime.fromtimestamp(start, UTC)
    stories = story_events(story_ids, seed=seed, now=now)
    taken = {str(e["phone"]) for events in stories.values() for e in events if "phone" in e}
    own_phones(day, taken)
    scratch = path.with_suffix(".tmp")
    write_jsonl(day, scratch, malformed_fraction=MALFORMED_FRACTION, seed=seed)
    raw = scratch.read_bytes().splitlines()
    scratch.unlink()
    drops: list[Drop] = []
    offset = 0.0
    for line in raw:
        offset = _offset(line, start_ms, offset)
        drops.append(Drop(offset, ((_shard(line, keys.shards), line),)))
    for n, (pid, events) in enumerate(stories.items()):
        lines = tuple((shard_of(pid, keys.shards), orjson.dumps(e)) for e in events)
        drops.append(Drop(STORY_AT[n % len(STORY_AT)] * seconds, lines, story=pid))
    drops.sort(key=lambda d: d.at)  # stable: a story goes after the lines due at its instant
    with path.open("wb") as f:
        f.writelines(line + b"\n" for d in drops for _, line in d.lines)
    redelivered = len(day) - len({e["id"] for e in day})
    contacts = contacts_from_lines(line for d in drops for _, line in d.lines)
    return Tape(drops, len(day), redelivered, len(raw) - len(day), randoms, stories, contacts)


def own_phones(events: list[EventDict], taken: set[str]) -> None:
    """Give each prospect's profile phone a number no other prospect has, in place: the same
    area code (so the same time zone), the last four digits counted up per area code, skipping
    `taken` (the story prospects' numbers). Redeliveries of a profile get the same number."""
    given: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    for event in events:
        phone = event.get("phone")
        if event.get("type") != "profile" or not isinstance(phone, str) or len(phone) < 9:
            continue
        key = (str(event["prospect"]), phone)
        if key not in given:
            area = phone[:-4]
            while True:
                n = counters.get(area, 0)
                counters[area] = n + 1
                number = f"{area}{n % 10_000:04d}"
                if number not in taken or n >= 10_000:  # past 10,000 per area code: shared
                    break
            taken.add(number)
            given[key] = number
        event["phone"] = given[key]


def story_events(pids: list[str], *, seed: int, now: datetime) -> dict[str, list[EventDict]]:
    """Each story's scripted events on the most recent day it fits entirely before `now`."""
    if not pids:
        return {}
    hour = (now - timedelta(hours=48)).replace(minute=0, second=0, microsecond=0)
    script = generate(len(pids), seed=seed, start=hour, hours=48)  # whole seconds from `hour`
    out: dict[str, list[EventDict]] = {}
    limit = now - _MARGIN
    for pid in pids:
        zone = ZoneInfo(STORIES[pid][0])
        events = [e for e in script if e["prospect"] == pid]
        times = [datetime.fromisoformat(str(e["ts"])).astimezone(zone) for e in events]
        days = (limit - max(times)) // timedelta(days=1) + 1
        while days > 0 and max(_shift(t, days) for t in times) > limit:
            days -= 1  # a DST change in between moved the UTC times by an hour
        out[pid] = [
            {**e, "ts": format_ts(int(_shift(t, days).timestamp() * 1000))}
            for e, t in zip(events, times, strict=True)
        ]
    return out


def _shift(local: datetime, days: int) -> datetime:
    """The same local clock time `days` later (aware arithmetic on a ZoneInfo is wall time)."""
    return local + timedelta(days=days)


def _offset(line: bytes, start_ms: int, previous: float) -> float:
    """Seconds after the start at which a line is due: its `ts`; a malformed line goes with the
    line before it."""
    try:
        return max(0.0, (parse_ts(orjson.loads(line)["ts"]) - start_ms) / 1000)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return previous


def _shard(line: bytes, shards: int) -> int:
    """The producer's shard formula; a line whose prospect cannot be read goes to shard 0."""
    try:
        prospect = orjson.loads(line).get("prospect")
    except (orjson.JSONDecodeError, AttributeError):
        return 0
    return shard_of(prospect, shards) if isinstance(prospect, str) else 0


class Publisher:
    """Publishes a tape's drops at their instants, from its own thread; counts what it sent."""

    def __init__(
        self, client: redis.Redis, keys: Keys, tape: Tape, start: float, stop: threading.Event
    ) -> None:
        self._r: Any = client
        self._keys = keys
        self._tape = tape
        self._start = start
        self._stop = stop
        self.published = 0
        self.stories: list[str] = []
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            drops = self._tape.drops
            i = 0
            while i < len(drops) and not self._stop.is_set():
                wait = self._start + drops[i].at - time.time()
                if wait > 0:
                    self._stop.wait(min(wait, 0.05))
                    continue
                pipe = self._r.pipeline(transaction=False)
                while i < len(drops) and self._start + drops[i].at <= time.time():
                    drop = drops[i]
                    i += 1
                    if drop.story is not None:  # what was due before it goes first
                        self._published(pipe.execute())
                        with self._r.pipeline(transaction=True) as story:
                            self._xadd(story, drop)
                            self._published(story.execute())
                        self.stories.append(drop.story)
                    else:
                        self._xadd(pipe, drop)
                self._published(pipe.execute())
        except BaseException as exc:  # the demo reports it and stops
            self.error = exc
        finally:
            self.done.set()

    def _xadd(self, pipe: Any, drop: Drop) -> None:
        for shard, line in drop.lines:
            pipe.xadd(self._keys.events(shard), {"event": line})

    def _published(self, replies: list[Any]) -> None:
        self.published += len(replies)
