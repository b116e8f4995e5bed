"""What the simulated sender answers to a command: a pure function of the seed and the command.

Provider-like answers, in time order after small delays: `touch_sent` (or `touch_failed`),
`delivered`, `opened`, `clicked`, `replied`, `bounce`, `call_outcome`, and `opt_out` when
unsubscribes are turned on. Kept apart from the sender's Redis loop so the tests and the report's
closed loop (tests/report/helpers.py) can answer commands without a sender or a Redis: the same
seed and command id always give the same answers, with ids derived from the command id, so a
command delivered twice is answered twice with the same event ids, which the flow's idempotency
drops. Handoffs (channel `rep`) are for people: never answered.
"""

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dataflows.demo.wire import EventDict
from operators.events import CHANNELS

# A planned answer: (seconds after the command was read, the event without its `ts`).
Answer = tuple[float, EventDict]

SITE: Final = "https://example.com"
_PAGES: Final = ("/pricing", "/features", "/customers", "/blog/outreach-fatigue")
_OUTCOMES: Final = (("answered", 25), ("voicemail", 30), ("no_answer", 35), ("busy", 7))
_SENTIMENTS: Final = (
    ("positive", 30, "Thanks, this looks useful. Can we talk next week?"),
    ("neutral", 30, "Can you send me the pricing sheet?"),
    ("negative", 15, "Not interested, please stop contacting me."),
    ("out_of_office", 25, "I am out of the office until Monday."),
)
_SMS_STOP: Final = ("STOP", "stop", "UNSUBSCRIBE")


@dataclass(frozen=True)
class Behaviour:
    """How often each answer happens (probabilities) and how long it takes (`delay_scale`)."""

    failed: float = 0.03  # the sender cannot carry the command out: `touch_failed`
    bounce: Mapping[str, float] = field(default_factory=lambda: {"email": 0.04, "sms": 0.02})
    hard_bounce: float = 0.4
    delivered: float = 0.97
    opened: float = 0.4  # email, once delivered
    clicked: float = 0.3  # once opened
    replied: Mapping[str, float] = field(
        default_factory=lambda: {"email": 0.05, "sms": 0.06, "chat": 0.12, "linkedin": 0.08}
    )
    stop_keyword: float = 0.35  # of sms replies: a bare STOP rather than words
    unsubscribed: float = 0.0  # of opened emails: the unsubscribe link (opt-in; drawn last)
    delay_scale: float = 1.0  # 0 answers at once (tests); delays are ~0.1-3 s at 1

    def __post_init__(self) -> None:
        rates = [self.failed, self.hard_bounce, self.delivered, self.opened, self.clicked]
        rates.append(self.unsubscribed)
        rates += [self.stop_keyword, *self.bounce.values(), *self.replied.values()]
        if not all(0.0 <= p <= 1.0 for p in rates) or self.delay_scale < 0:
            msg = f"sender: probabilities must be in [0, 1] and delay_scale >= 0, got {self}"
            raise ValueError(msg)


# Answers only confirm: used for prospects whose own script already says what they do.
CONFIRM_ONLY: Final = Behaviour(failed=0.0, bounce={}, delivered=0.0, replied={})


def _weighted(rand: Callable[[], float], table: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    x = rand() * sum(row[1] for row in table)
    for row in table:
        x -= row[1]
        if x < 0:
            return row
    return table[-1]


def plan(command: Mapping[str, Any], *, seed: int, behaviour: Behaviour) -> list[Answer]:
    """The answers to one command, in time order; empty for a handoff or an unknown channel.

    The unsubscribe is drawn after everything else, so turning it on changes no other answer."""
    cid, channel, prospect = str(command["id"]), command["channel"], command["prospect"]
    if channel not in CHANNELS:
        return []
    rand = random.Random(f"{seed}:{cid}").random
    b = behaviour
    out: list[Answer] = []

    def add(at: float, kind: str, **fields: object) -> None:
        event: EventDict = {"id": f"{cid}:{kind}", "type": kind, "prospect": prospect}
        event.update(fields)
        out.append((at * b.delay_scale, event))

    t = 0.05 + rand() * 0.25
    if rand() < b.failed:
        add(t, "touch_failed", channel=channel, command=cid)
        return out
    sent: EventDict = {"channel": channel, "command": cid, "by": "automation"}
    if command.get("topic"):
        sent["topic"] = command["topic"]
    add(t, "touch_sent", **sent)
    if rand() < b.bounce.get(channel, 0.0):
        add(t + 0.1 + rand() * 0.4, "bounce", channel=channel, hard=rand() < b.hard_bounce)
        return out
    if channel == "phone":
        if b.delivered:  # a call's outcome is its delivery report
            outcome = _weighted(rand, _OUTCOMES)[0]
            add(t + 0.3 + rand() * 1.2, "call_outcome", outcome=outcome, command=cid)
        return out
    if rand() >= b.delivered:
        return out
    t += 0.1 + rand() * 0.5
    add(t, "delivered", channel=channel, command=cid)
    opened = None
    if channel == "email" and rand() < b.opened:
        t += 0.3 + rand() * 1.7
        opened = t
        add(t, "opened", channel=channel, command=cid)
        if rand() < b.clicked:
            url = f"{SITE}{_PAGES[int(rand() * len(_PAGES))]}?utm_source=email"
            add(t + 0.1 + rand() * 0.7, "clicked", channel=channel, url=url, command=cid)
    if rand() < b.replied.get(channel, 0.0):
        at = t + 0.5 + rand() * 2.0
        if channel == "sms" and rand() < b.stop_keyword:
            add(at, "replied", channel=channel, text=_SMS_STOP[int(rand() * len(_SMS_STOP))])
        else:
            sentiment, _, text = _weighted(rand, _SENTIMENTS)
            add(at, "replied", channel=channel, text=text, sentiment=sentiment)
    if opened is not None and rand() < b.unsubscribed:
        add(opened + 0.2 + rand() * 1.0, "opt_out", channel="email")
        out.sort(key=lambda answer: answer[0])  # stable: the send stays first
    return out
