"""Driving one arm: the real engine decides, simulated prospects answer, in event time.

State is per prospect, so prospects run one after another: the next thing to happen is either
the engine's next due timer (`Engine.next_due`, fired alone with `Engine.fire_due`) or the next
simulated event (`Engine.apply`), whichever is earlier, until `horizon_days` after the
enrollment. Outputs are answered as they appear, so every answer arrives in time order.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

from operators import events as ev
from operators.engine import Engine
from operators.events import CHANNEL_INDEX, CHANNELS, Channel
from operators.preference import ranked
from operators.records import Command, Decision
from operators.rules import QUIET_HOURS
from operators.state import ProspectState
from operators.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, from_ms, to_ms

from .arms import ADAPTIVE, BASIC, Arm
from .metrics import ArmResult, Outcome
from .model import SEGMENTS, SimConfig, SimProspect, behaviour, calibrate, make_prospects

# Per touch, by channel: the same in every arm. A call or a text interrupts: twice email's.
OPT_OUT: Final[dict[Channel, float]] = {
    "email": 0.005,
    "linkedin": 0.005,
    "chat": 0.005,
    "sms": 0.010,
    "phone": 0.010,
}
COMPLAINT: Final[dict[Channel, float]] = {
    "email": 0.001,
    "linkedin": 0.001,
    "chat": 0.001,
    "sms": 0.002,
    "phone": 0.002,
}
EMAIL_REPLY_SHARE: Final = 0.35  # of email responses (opens), how many also reply
POSITIVE_SHARE: Final = 0.6  # of replies: positive, else neutral
MEAN_DELAY_H: Final[dict[Channel, float]] = {
    "email": 8.0,
    "sms": 1.0,
    "linkedin": 12.0,
    "chat": 0.5,
    "phone": 4.0,  # a call returned (an answer elsewhere only; our own calls are answered live)
}
MAX_DELAY_MS: Final = 60 * HOUR_MS  # inside the 72 h response window: every response is a hit
DRAWS_PER_TOUCH: Final = 6
CROSS_DRAWS: Final = 2  # from the prospect's own stream: an answer elsewhere, and its delay
LETTER: Final[dict[str, str]] = {
    "email": "e",
    "sms": "s",
    "phone": "p",
    "chat": "c",
    "linkedin": "l",
}


class _Run:
    """One prospect in one arm: a queue of simulated events, answered as the engine speaks."""

    def __init__(
        self, engine: Engine, arm: Arm, p: SimProspect, cfg: SimConfig, scale: float | None
    ) -> None:
        self.engine = engine
        self.arm = arm
        self.p = p
        self.b = behaviour(p, scale, cfg)
        self.top = p.top
        self.state = ProspectState(prospect=p.id)
        self.rng = random.Random(f"{cfg.seed}:outcome:{p.index}")
        self.cross_rng = random.Random(f"{cfg.seed}:cross:{p.index}")
        self.queue: list[tuple[int, int, ev.Event]] = []
        self.n = 0
        self.touches = self.responses = self.elsewhere = 0
        self.conversed = self.opted_out = self.complained = False
        self.campaigns = cfg.campaigns
        self.every_ms = cfg.campaign_every_days * DAY_MS
        self.replied_in: set[int] = set()  # campaigns the prospect replied to
        self.answered_in: set[int] = set()  # campaigns with a touch answered
        self.talked = False  # the engine has seen a reply or an answered call
        self.after_talk = self.auto_touches = self.quiet_diverted = 0
        self.path: list[str] = []
        self.kinds: Counter[str] = Counter()
        self.channels: Counter[str] = Counter()
        self.blocked: Counter[str] = Counter()
        self.deferred: Counter[str] = Counter()
        # The segment's top channel by its prior alone, and a blank state to ask whether quiet
        # hours hold that channel at some instant (consent granted: only the clock can stop it).
        pref, order = arm.policy.preference, arm.policy.requests.auto_order
        auto_order = tuple(CHANNEL_INDEX[c] for c in order)
        self.prior_top = ranked(None, p.segment, pref, auto_order)[0]
        self.probe = ProspectState(
            prospect=p.id, timezone=p.timezone, consent=(1 << len(CHANNELS)) - 1
        )

    def _id(self) -> str:
        self.n += 1
        return f"{self.p.id}:{self.n}"

    def push(self, at: int, make: Callable[..., ev.Event], **fields: Any) -> None:
        event = make(id=self._id(), prospect=self.p.id, ts=from_ms(at), **fields)
        heapq.heappush(self.queue, (at, self.n, event))

    def run(self, horizon_ms: int) -> None:
        p, start = self.p, self.p.enroll_ms
        self.push(start - DAY_MS, ev.Profile, timezone=p.timezone, segment=p.segment)
        self.push(start - DAY_MS, ev.Consent, channel="sms", granted=True)
        self.push(start - DAY_MS, ev.Consent, channel="phone", granted=True)
        if self.arm.oracle:  # what perfect detection would know: the prospect's own channel
            self.push(start - DAY_MS, ev.Preference, channel=self.top, stance="prefer")
        for k in range(self.campaigns):
            begins = start + k * self.every_ms
            if self.arm.sequence is not None:
                self.push(begins, ev.Enroll, sequence=self.arm.sequence)
                continue
            # the campaign tool asks for `auto` touches at the template's step times
            for i, step in enumerate(self.arm.policy.sequences[self.arm.template].steps):
                at = begins + step.after_hours * HOUR_MS  # the template counts from the start
                self.push(at, ev.TouchRequest, channel="auto", campaign=f"sim{k + 1}.{i + 1}")
        engine, state = self.engine, self.state
        for _ in range(100_000):
            due = engine.next_due(state)
            nxt = self.queue[0][0] if self.queue else None
            if due is not None and (nxt is None or due < nxt):
                if due > horizon_ms:
                    return
                out: list[Any] = []
                engine.fire_due(state, due, out)
            elif nxt is not None:
                if nxt > horizon_ms:
                    return
                _, _, event = heapq.heappop(self.queue)
                if isinstance(event, ev.TouchRequest) and self._campaign(nxt) in self.replied_in:
                    continue  # the campaign stops once the prospect replied to it
                out = engine.apply(state, event)
                self._seen(event)
            else:
                return
            for t, _seq, record in out:
                self._answer(t, record)
        msg = f"{p.id}: the simulation did not settle"
        raise RuntimeError(msg)

    def _campaign(self, t: int) -> int:
        """Which campaign the instant `t` belongs to (they follow each other)."""
        return min(max(0, (t - self.p.enroll_ms) // self.every_ms), self.campaigns - 1)

    def _seen(self, event: ev.Event) -> None:
        if isinstance(event, ev.Replied) and event.text != "STOP":
            self.talked = True
            self.replied_in.add(self._campaign(to_ms(event.ts)))
        elif isinstance(event, ev.CallOutcome) and event.outcome == "answered":
            self.talked = True

    def _answer(self, t: int, record: Command | Decision) -> None:
        if isinstance(record, Decision):
            self._count_decision(record)
            return
        if record.channel == "rep":
            return  # a hand-off to a person, not a touch
        ch: Channel = record.channel
        self._count_touch(t, record, ch)
        u = [self.rng.random() for _ in range(DRAWS_PER_TOUCH)]  # always all: streams align
        x = [self.cross_rng.random() for _ in range(CROSS_DRAWS)]
        delay = _delay(ch, u[1])
        if u[0] < OPT_OUT[ch]:
            self.opted_out = True
            if ch == "sms":
                self.push(t + delay, ev.Replied, channel="sms", text="STOP")
            else:
                self.push(t + delay, ev.OptOut, channel=ch)
        elif u[0] < OPT_OUT[ch] + COMPLAINT[ch]:
            self.complained = True
            self.push(t + delay, ev.Complaint, channel=ch)
        elif u[2] < self.b.answer[ch]:
            self._respond(t, record.id, ch, delay, u)
        else:
            if ch == "phone":
                self.push(t + MINUTE_MS, ev.CallOutcome, outcome="no_answer", command=record.id)
            if ch != self.top and x[0] < self.b.cross:
                self._answer_elsewhere(t + _later(self.top, x[1]), u[4])

    def _respond(self, t: int, cid: str, ch: Channel, delay: int, u: list[float]) -> None:
        """An answer on the channel touched (tracking events name their command)."""
        self.responses += 1
        self.answered_in.add(self._campaign(t))
        sentiment = "positive" if u[4] < POSITIVE_SHARE else "neutral"
        text = "Sounds good, tell me more" if sentiment == "positive" else "Maybe later"
        if ch == "phone":
            self.conversed = True
            self.push(t + 2 * MINUTE_MS, ev.CallOutcome, outcome="answered", command=cid)
        elif ch == "email":
            self.push(t + delay, ev.Opened, channel="email", command=cid)
            if u[3] < EMAIL_REPLY_SHARE:
                self.conversed = True
                later = t + delay + _delay("email", u[5]) // 4 + MINUTE_MS
                self.push(later, ev.Replied, channel="email", text=text, sentiment=sentiment)
        else:
            self.conversed = True
            self.push(t + delay, ev.Replied, channel=ch, text=text, sentiment=sentiment)

    def _answer_elsewhere(self, at: int, u: float) -> None:
        """Touched on another channel, the prospect answers on their own: texts back, writes an
        email, answers on LinkedIn, opens a chat, or returns the call (a `replied` on phone, as
        a call log records it). Every one is a reply: the conversation starts there."""
        self.responses += 1
        self.elsewhere += 1
        self.answered_in.add(self._campaign(at))
        self.conversed = True
        sentiment = "positive" if u < POSITIVE_SHARE else "neutral"
        text = "Text me instead" if sentiment == "positive" else "Not now, maybe later"
        if self.top == "chat":
            self.push(at, ev.ChatStarted)
            at += MINUTE_MS
        self.push(at, ev.Replied, channel=self.top, text=text, sentiment=sentiment)

    def _count_decision(self, record: Decision) -> None:
        if record.reason.startswith(("sequence:", "request:", "escalation:")):
            rule = record.rule or "?"
            if record.reason.startswith("escalation:"):
                rule += " (follow-up)"
            if record.verdict == "blocked":
                self.blocked[rule] += 1
            elif record.verdict == "deferred":
                self.deferred[rule] += 1

    def _count_touch(self, t: int, record: Command, ch: Channel) -> None:
        self.touches += 1
        self.channels[ch] += 1
        kind = record.reason.split(":", 1)[0]
        self.kinds[record.reason if kind == "escalation" else kind] += 1
        self.path.append(LETTER[ch])
        self.after_talk += self.talked
        if record.reason.startswith((f"sequence:{ADAPTIVE}:", "request:")):
            self.auto_touches += 1
            if CHANNEL_INDEX[ch] != self.prior_top:
                held, _ = self.engine.rules.verdict(self.probe, self.prior_top, t, 0)
                self.quiet_diverted += held == QUIET_HOURS

    def outcome(self) -> Outcome:
        return Outcome(
            self.p.segment,
            self.touches,
            self.responses,
            0 in self.answered_in,  # the first campaign's
            self.conversed,
            self.opted_out,
            self.complained,
            self.after_talk,
            "".join(self.path),
            self.p.hidden != self.p.segment,
            self.elsewhere,
            self.campaigns > 1 and self.campaigns - 1 in self.answered_in,
        )


def _delay(ch: Channel, u: float) -> int:
    """An exponential delay with the channel's mean, capped inside the response window; our
    own calls are answered (or refused) at once."""
    if ch == "phone":
        return MINUTE_MS
    return _later(ch, u)


def _later(ch: Channel, u: float) -> int:
    ms = -math.log1p(-u) * MEAN_DELAY_H[ch] * HOUR_MS
    return min(int(ms), MAX_DELAY_MS) + MINUTE_MS


def run_arm(
    arm: Arm, prospects: Sequence[SimProspect], cfg: SimConfig, scale: float | None = None
) -> ArmResult:
    engine = Engine(arm.policy)
    result = ArmResult(arm.name, arm.label, scale=scale)
    result.segment_channels = {s: Counter() for s in SEGMENTS}
    for p in prospects:
        run = _Run(engine, arm, p, cfg, scale)
        last = (cfg.campaigns - 1) * cfg.campaign_every_days
        run.run(p.enroll_ms + (last + cfg.horizon_days) * DAY_MS)
        result.outcomes.append(run.outcome())
        result.channels.update(run.channels)
        result.segment_channels[p.segment].update(run.channels)
        result.step_blocked.update(run.blocked)
        result.step_deferred.update(run.deferred)
        result.kinds.update(run.kinds)
        result.auto_touches += run.auto_touches
        result.quiet_diverted += run.quiet_diverted
    return result


def basic_path(arm_list: Sequence[Arm]) -> list[str]:
    """The channels of `basic`'s steps (the fixed sequence the calibration aims at)."""
    policy = arm_list[0].policy
    return [str(step.channel) for step in policy.sequences[BASIC].steps]


def simulate(cfg: SimConfig, arm_list: Sequence[Arm]) -> dict[str, ArmResult]:
    """Every arm over the same population; calibrated first when `base_response` is set."""
    prospects = make_prospects(cfg)
    scale = None
    if cfg.base_response is not None:
        scale = calibrate(prospects, cfg, basic_path(arm_list))
    return {arm.name: run_arm(arm, prospects, cfg, scale) for arm in arm_list}
