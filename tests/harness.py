"""A small harness for driving the engine directly in tests: events in, records out."""

import itertools
from typing import Any

import msgspec

from operators.engine import Engine
from operators.events import Event, decode_event
from operators.policy import Policy, load_policy
from operators.records import Command, Decision
from operators.state import ProspectState
from operators.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, format_ts, parse_ts

# Monday 2026-03-02 15:00 UTC = 10:00 in New York (EST, before the March 8 DST change).
T0 = parse_ts("2026-03-02T15:00:00Z")
H = HOUR_MS
D = DAY_MS
M = MINUTE_MS

_ids = itertools.count(1)


def event(kind: str, at: int, prospect: str = "p", id: str | None = None, **fields: Any) -> Event:
    """A contract event, through the real JSON decoder."""
    doc = {"id": id or f"e{next(_ids)}", "type": kind, "prospect": prospect, "ts": format_ts(at)}
    doc.update(fields)
    return decode_event(msgspec.json.encode(doc))


def immediate(policy: Policy) -> Policy:
    """`policy` with requests decided at once (no arbitration window), for rule tests."""
    requests = msgspec.structs.replace(policy.requests, arbitration_seconds=0)
    return msgspec.structs.replace(policy, requests=requests)


class Prospect:
    """One prospect's state plus the engine, collecting every output record in order.

    Requests are decided at once unless a policy is given: the arbitration window has tests
    of its own (test_priority.py); the other rules are clearer without it.
    """

    def __init__(self, policy: Policy | None = None, prospect: str = "p") -> None:
        self.engine = Engine(policy or immediate(load_policy()))
        self.state = ProspectState(prospect=prospect)
        self.records: list[Command | Decision] = []

    def send(self, kind: str, at: int, **fields: Any) -> list[Command | Decision]:
        outs = self.engine.apply(self.state, event(kind, at, self.state.prospect, **fields))
        new = [o[2] for o in outs]
        self.records.extend(new)
        return new

    def fire(self, until: int) -> list[Command | Decision]:
        outs: list[Any] = []
        self.engine.fire_due(self.state, until, outs)
        new = [o[2] for o in outs]
        self.records.extend(new)
        return new

    def ready(self, *channels: str, at: int = T0 - 30 * D, tz: str = "America/New_York") -> None:
        """Profile with a zone and consent on `channels`, a month before T0."""
        self.send("profile", at, timezone=tz)
        for ch in channels:
            self.send("consent", at, channel=ch, granted=True)

    @property
    def commands(self) -> list[Command]:
        return [r for r in self.records if isinstance(r, Command)]

    @property
    def decisions(self) -> list[Decision]:
        return [r for r in self.records if isinstance(r, Decision)]


def only_decision(records: list[Command | Decision]) -> Decision:
    found = [r for r in records if isinstance(r, Decision)]
    assert len(found) == 1, found
    return found[0]


def request(p: Prospect, at: int, channel: str, **fields: Any) -> Decision:
    """A touch_request; returns its single decision record."""
    fields.setdefault("campaign", "c")
    return only_decision(p.send("touch_request", at, channel=channel, **fields))
