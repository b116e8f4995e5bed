"""A closed-loop outreach simulation: the engine decides, simulated prospects answer, in event time.

Used by `tests/operators/test_simulation.py` (assertions) and `benchmarks/sim_adaptive.py`
(tables and JSON). Everything is deterministic: one seed names the prospects, their hidden
response rates, their enrollment times and every outcome draw, and nothing reads the wall clock.

Prospects. `prospects` prospects, split evenly over the three observed segments (the issue's
rates; "social" is LinkedIn): digital natives (25-35) sms 47 %, email 23 %, LinkedIn 34 %,
phone 12 %; digital adopters (36-45) sms 28 %, email 41 %, LinkedIn 19 %, phone 18 %;
traditional (46-55) sms 19 %, email 52 %, LinkedIn 8 %, phone 31 %. Chat was never measured;
the engine guesses 0.25 for it, and the simulation makes prospects answer chat at `chat_rate`
(default 0.15, below the guess, so a wrong prior costs the adaptive arm, not basic). Each
prospect gets a profile (segment, one of six time zones) and sms and phone consent, so every
channel is usable.

Hidden rates. With `concentration` = k, each prospect's true rate on a channel is drawn from
Beta(k m, k (1 - m)) around its segment's rate m: the population still answers at the observed
rates (the engine's priors are right on average) but individuals differ, which is what the
per-prospect learning can pick up. k = 10 equals the engine's `prior_strength`, the value for
which the engine's prior is exactly the population's spread. `concentration=None` gives every
prospect its segment's rates exactly: then there is nothing individual to learn.

Outcomes. Every command the engine emits (except `rep` hand-offs) is a touch; for each, a
fixed number of uniform draws from the prospect's own outcome stream decide, in this order:
an opt-out (`OPT_OUT`, per touch, by channel; sms opts out by replying STOP), else a complaint
(`COMPLAINT`), else a response with the prospect's true rate on that channel:
  email    `opened` after an exponential delay (mean 8 h), then with probability 0.35 a
           `replied` (positive or neutral) some hours later;
  sms      `replied` (mean 1 h); linkedin `replied` (mean 12 h); chat `replied` (mean 30 min);
  phone    `call_outcome` answered 2 minutes after the call (unanswered calls: `no_answer`).
`opened` and `call_outcome` name their command, as tracking events do, so the engine's response
branching runs: an opened sequence email with no click brings an sms follow-up
(`escalation:sms`). Nobody clicks, so the clicked-no-reply call never fires.
Delays are capped at 60 h, inside the engine's 72 h response window, so every simulated
response is a hit for the engine's learning. The adverse rates are the same in every arm and
depend only on the channel (sms and phone, the intrusive ones, at twice email's), so an arm has
more opt-outs or complaints only if it touches more, or on more intrusive channels.

Arms share everything (common random numbers): prospect i has the same profile, hidden rates,
enrollment time and outcome stream in every arm, and its k-th touch uses the same draws, so arm
differences are measured on paired prospects (`paired`), with far less noise than independent
samples would give.

Enrollment. On a weekday of the first week (from Monday 2026-03-02): at 09:00-17:00 in the
prospect's zone (`business`, the default: a rep or a batch job in working hours), or at any
minute (`anytime`; then every step of a sequence timed in whole days lands at night too).

Driving. State is per prospect, so prospects run one after another: the next thing to happen is
either the engine's next due timer (`Engine.next_due`, fired alone with `Engine.fire_due`) or the
next simulated event (`Engine.apply`), whichever is earlier, until `horizon_days` after the
enrollment. Outputs are answered as they appear, so every answer arrives in time order.

Arms (`arms`): `basic` (the built-in, fixed channels); `adaptive` (`[sequences.adaptive]`,
appended to config/default.toml: basic's timing and topics, every channel `preferred`); three
ablations of it, with per-prospect learning off (a prior so strong evidence never moves it),
the segment priors off (near-flat priors), or both (no information at all); and `auto_requests`
(`auto` touch_requests at basic's times, no sequence).

Besides the rates, each arm records diagnostics: touches by kind (sequence step, sms follow-up,
request), every blocked or deferred step or follow-up by rule, how many engine-chosen touches
went to a lower-ranked channel because quiet hours held the segment's top channel at that
instant, touches sent after the prospect replied or answered a call, and each prospect's
channel path (to see whether learning changed any choice).
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

import msgspec

from operators import events as ev
from operators.engine import Engine
from operators.events import CHANNEL_INDEX, CHANNELS, Channel
from operators.policy import DEFAULT_CONFIG, Policy, parse_policy
from operators.preference import DEFAULT_SEGMENT, PreferenceConfig, ranked
from operators.records import Command, Decision
from operators.rules import QUIET_HOURS
from operators.state import ProspectState
from operators.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, from_ms, to_ms

SEGMENTS: Final = ("digital_native", "digital_adopter", "traditional")
SEGMENT_AGES: Final = {
    "digital_native": "25-35",
    "digital_adopter": "36-45",
    "traditional": "46-55",
}
# The observed response rates ("social" is LinkedIn). Chat: see `SimConfig.chat_rate`.
OBSERVED: Final[dict[str, dict[Channel, float]]] = {
    "digital_native": {"sms": 0.47, "email": 0.23, "linkedin": 0.34, "phone": 0.12},
    "digital_adopter": {"sms": 0.28, "email": 0.41, "linkedin": 0.19, "phone": 0.18},
    "traditional": {"sms": 0.19, "email": 0.52, "linkedin": 0.08, "phone": 0.31},
}
CHAT_RATE: Final = 0.15
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
}
MAX_DELAY_MS: Final = 60 * HOUR_MS  # inside the 72 h response window: every response is a hit
DRAWS_PER_TOUCH: Final = 6

ZONES: Final = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
)
START: Final = datetime(2026, 3, 2)  # a Monday (naive: made local to each prospect's zone)
EnrollHours = Literal["business", "anytime"]

LETTER: Final[dict[str, str]] = {
    "email": "e",
    "sms": "s",
    "phone": "p",
    "chat": "c",
    "linkedin": "l",
}
ADAPTIVE: Final = "adaptive"
BASIC: Final = "basic"
HUGE_STRENGTH: Final = 1e12  # a prior this strong never moves: learning switched off
FLAT_RATE: Final = 0.25
# "Flat" priors step down by this along `auto_order`. Exactly equal priors would not do: with
# learning off, one miss still lowers an estimate by ~1e-13 and breaks the tie, so the ranking
# would still rotate away from every unanswered channel (that is learning, in effect).
FLAT_STEP: Final = 1e-6


# -- policies ---------------------------------------------------------------------------------


def adaptive_toml(policy: Policy, template: str = BASIC, name: str = ADAPTIVE) -> str:
    """A `[sequences.<name>]` table with `template`'s timing, topics and conditions, every step
    on the `preferred` channel (derived from the parsed template, so it follows any edit)."""
    rows = []
    for step in policy.sequences[template].steps:
        rows.append(
            f'  {{ after_hours = {step.after_hours}, since = "{step.since}", '
            f'channel = "preferred", topic = "{step.topic}", when = "{step.when}" }},'
        )
    return f"\n[sequences.{name}]\nsteps = [\n" + "\n".join(rows) + "\n]\n"


def sim_policy() -> Policy:
    """The bundled policy (config/default.toml) plus `[sequences.adaptive]`."""
    text = DEFAULT_CONFIG.read_text()
    return parse_policy(text + adaptive_toml(parse_policy(text)), "default.toml + adaptive")


def with_preference(policy: Policy, *, learning: bool = True, priors: bool = True) -> Policy:
    """`policy` with learning (`prior_strength` so large that evidence never moves an estimate)
    and/or the segment priors switched off (every segment: `FLAT_RATE`, less `FLAT_STEP` per
    place in `auto_order`, so the ranking is `auto_order` until evidence moves it)."""
    pref = policy.preference
    order = policy.requests.auto_order
    flat: dict[Channel, float] = {c: FLAT_RATE - FLAT_STEP * order.index(c) for c in order}
    for c in CHANNELS:
        flat.setdefault(c, FLAT_RATE - FLAT_STEP * len(order))
    new = PreferenceConfig(
        prior_strength=pref.prior_strength if learning else HUGE_STRENGTH,
        priors=pref.priors if priors else {DEFAULT_SEGMENT: flat},
        response_window_hours=pref.response_window_hours,
    )
    return msgspec.structs.replace(policy, preference=new)


@dataclass(frozen=True)
class Arm:
    """One way of contacting every prospect: a policy and a sequence (or auto requests)."""

    name: str
    label: str
    policy: Policy
    sequence: str | None  # None: `touch_request` channel=auto at the template's step times
    template: str = BASIC


def arms(policy: Policy | None = None, names: Iterable[str] | None = None) -> list[Arm]:
    """The arms, by name: `basic` is the control; the `adaptive_*` ablations switch learning
    and/or the segment priors off; `auto_requests` sends `auto` touch_requests at basic's step
    times instead of a sequence, the campaign tool stopping after a reply as a sequence would."""
    p = policy or sim_policy()
    every = [
        Arm(BASIC, "basic (fixed channels)", p, BASIC),
        Arm(ADAPTIVE, "adaptive (segment priors + learning)", p, ADAPTIVE),
        Arm(
            "adaptive_priors_only",
            "adaptive, learning off (segment priors only)",
            with_preference(p, learning=False),
            ADAPTIVE,
        ),
        Arm(
            "adaptive_learning_only",
            "adaptive, flat priors + learning",
            with_preference(p, priors=False),
            ADAPTIVE,
        ),
        Arm(
            "adaptive_no_information",
            "adaptive, flat priors, learning off",
            with_preference(p, learning=False, priors=False),
            ADAPTIVE,
        ),
        Arm("auto_requests", "auto touch_requests at basic's times", p, None),
    ]
    if names is None:
        return every
    wanted = list(names)
    by_name = {a.name: a for a in every}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        msg = f"unknown arms {unknown}; known: {list(by_name)}"
        raise ValueError(msg)
    return [by_name[n] for n in wanted]


# -- prospects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    prospects: int = 3000
    seed: int = 7
    concentration: float | None = 10.0  # None: true rates are exactly the segment rates
    chat_rate: float = CHAT_RATE
    enroll_hours: EnrollHours = "business"
    horizon_days: int = 21


@dataclass(frozen=True)
class SimProspect:
    id: str
    index: int
    segment: str
    timezone: str
    enroll_ms: int
    rates: dict[Channel, float]  # the hidden true response probability per channel


def true_rates(segment: str, cfg: SimConfig, index: int) -> dict[Channel, float]:
    """One stream per prospect and channel: `betavariate` takes a varying number of draws, so a
    shared stream would let `chat_rate` move the other channels' rates."""
    rates: dict[Channel, float] = {}
    k = cfg.concentration
    for ch in CHANNELS:
        mean = cfg.chat_rate if ch == "chat" else OBSERVED[segment][ch]
        if k is None:
            rates[ch] = mean
        else:
            rng = random.Random(f"{cfg.seed}:rate:{index}:{ch}")
            rates[ch] = rng.betavariate(k * mean, k * (1.0 - mean))
    return rates


def enroll_time(zone: str, cfg: SimConfig, rng: random.Random) -> int:
    """A weekday of the first week: 09:00-17:00 local (`business`), or any minute (`anytime`)."""
    day = rng.randrange(5)
    if cfg.enroll_hours == "business":
        minute = 9 * 60 + rng.randrange(8 * 60)
        local = (START + timedelta(days=day, minutes=minute)).replace(tzinfo=ZoneInfo(zone))
        return to_ms(local)
    minute = rng.randrange(24 * 60)
    return to_ms((START + timedelta(days=day, minutes=minute)).replace(tzinfo=ZoneInfo("UTC")))


def make_prospects(cfg: SimConfig) -> list[SimProspect]:
    """The population: segment by index (even split), zone and enrollment from the prospect's
    own stream, hidden rates from one stream per channel (`true_rates`)."""
    out = []
    for i in range(cfg.prospects):
        rng = random.Random(f"{cfg.seed}:prospect:{i}")
        segment = SEGMENTS[i % len(SEGMENTS)]
        zone = rng.choice(ZONES)
        start = enroll_time(zone, cfg, rng)
        out.append(SimProspect(f"p{i:06d}", i, segment, zone, start, true_rates(segment, cfg, i)))
    return out


# -- results ----------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """What happened to one prospect in one arm."""

    segment: str
    touches: int
    responses: int  # touches answered (open, reply or answered call), as the rates count them
    responded: bool  # answered at least one touch
    conversed: bool  # replied (not STOP) or answered a call: a conversation for a person
    opted_out: bool
    complained: bool
    after_conversation: int  # touches sent after the prospect replied or answered a call
    path: str  # the channels touched, in order, one letter each (`LETTER`)


@dataclass
class ArmResult:
    arm: str
    label: str
    outcomes: list[Outcome] = field(default_factory=list)
    channels: Counter[str] = field(default_factory=Counter)  # touches by channel
    segment_channels: dict[str, Counter[str]] = field(default_factory=dict)
    step_blocked: Counter[str] = field(default_factory=Counter)  # by rule (+ " (follow-up)")
    step_deferred: Counter[str] = field(default_factory=Counter)  # by rule (+ " (follow-up)")
    kinds: Counter[str] = field(default_factory=Counter)  # touches: sequence, escalation:sms, ...
    auto_touches: int = 0  # touches whose channel the engine chose (`preferred` or `auto`)
    quiet_diverted: int = 0  # ... not on the segment's top channel, as quiet hours held it


# -- driving ----------------------------------------------------------------------------------


class _Run:
    """One prospect in one arm: a queue of simulated events, answered as the engine speaks."""

    def __init__(self, engine: Engine, arm: Arm, p: SimProspect, cfg: SimConfig) -> None:
        self.engine = engine
        self.arm = arm
        self.p = p
        self.state = ProspectState(prospect=p.id)
        self.rng = random.Random(f"{cfg.seed}:outcome:{p.index}")
        self.queue: list[tuple[int, int, ev.Event]] = []
        self.n = 0
        self.touches = self.responses = 0
        self.conversed = self.opted_out = self.complained = self.replied = False
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
        self.top = ranked(None, p.segment, pref, auto_order)[0]
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
        if self.arm.sequence is not None:
            self.push(start, ev.Enroll, sequence=self.arm.sequence)
        else:  # the campaign tool asks for `auto` touches at the template's step times
            policy = self.arm.policy
            for i, step in enumerate(policy.sequences[self.arm.template].steps):
                at = start + step.after_hours * HOUR_MS  # the template counts from the start
                self.push(at, ev.TouchRequest, channel="auto", campaign=f"sim{i + 1}")
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
                if isinstance(event, ev.TouchRequest) and self.replied:
                    continue  # the campaign stops once the prospect replied
                out = engine.apply(state, event)
                self._seen(event)
            else:
                return
            for t, _seq, record in out:
                self._answer(t, record)
        msg = f"{p.id}: the simulation did not settle"
        raise RuntimeError(msg)

    def _seen(self, event: ev.Event) -> None:
        if isinstance(event, ev.Replied) and event.text != "STOP":
            self.replied = self.talked = True
        elif isinstance(event, ev.CallOutcome) and event.outcome == "answered":
            self.talked = True

    def _answer(self, t: int, record: Command | Decision) -> None:
        if isinstance(record, Decision):
            if record.reason.startswith(("sequence:", "request:", "escalation:")):
                rule = record.rule or "?"
                if record.reason.startswith("escalation:"):
                    rule += " (follow-up)"
                if record.verdict == "blocked":
                    self.blocked[rule] += 1
                elif record.verdict == "deferred":
                    self.deferred[rule] += 1
            return
        if record.channel == "rep":
            return  # a hand-off to a person, not a touch
        ch: Channel = record.channel
        cid = record.id  # tracking events name their command, as production ones do
        self.touches += 1
        self.channels[ch] += 1
        kind = record.reason.split(":", 1)[0]
        self.kinds[record.reason if kind == "escalation" else kind] += 1
        self.path.append(LETTER[ch])
        self.after_talk += self.talked
        if record.reason.startswith((f"sequence:{ADAPTIVE}:", "request:")):
            self.auto_touches += 1
            if CHANNEL_INDEX[ch] != self.top:
                held, _ = self.engine.rules.verdict(self.probe, self.top, t, 0)
                self.quiet_diverted += held == QUIET_HOURS
        u = [self.rng.random() for _ in range(DRAWS_PER_TOUCH)]  # always all: streams align
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
        elif u[2] < self.p.rates[ch]:
            self.responses += 1
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
        elif ch == "phone":
            self.push(t + MINUTE_MS, ev.CallOutcome, outcome="no_answer", command=cid)

    def outcome(self) -> Outcome:
        return Outcome(
            self.p.segment,
            self.touches,
            self.responses,
            self.responses > 0,
            self.conversed,
            self.opted_out,
            self.complained,
            self.after_talk,
            "".join(self.path),
        )


def _delay(ch: Channel, u: float) -> int:
    """An exponential delay with the channel's mean, capped inside the response window."""
    if ch == "phone":
        return MINUTE_MS
    ms = -math.log1p(-u) * MEAN_DELAY_H[ch] * HOUR_MS
    return min(int(ms), MAX_DELAY_MS) + MINUTE_MS


def run_arm(arm: Arm, prospects: Sequence[SimProspect], cfg: SimConfig) -> ArmResult:
    engine = Engine(arm.policy)
    result = ArmResult(arm.name, arm.label)
    result.segment_channels = {s: Counter() for s in SEGMENTS}
    for p in prospects:
        run = _Run(engine, arm, p, cfg)
        run.run(p.enroll_ms + cfg.horizon_days * DAY_MS)
        result.outcomes.append(run.outcome())
        result.channels.update(run.channels)
        result.segment_channels[p.segment].update(run.channels)
        result.step_blocked.update(run.blocked)
        result.step_deferred.update(run.deferred)
        result.kinds.update(run.kinds)
        result.auto_touches += run.auto_touches
        result.quiet_diverted += run.quiet_diverted
    return result


def simulate(cfg: SimConfig, arm_list: Sequence[Arm]) -> dict[str, ArmResult]:
    prospects = make_prospects(cfg)
    return {arm.name: run_arm(arm, prospects, cfg) for arm in arm_list}


# -- metrics ----------------------------------------------------------------------------------

Metric = Callable[[Outcome], float]
METRICS: Final[dict[str, Metric]] = {
    "response_rate": lambda o: float(o.responded),
    "conversation_rate": lambda o: float(o.conversed),
    "opt_out_rate": lambda o: float(o.opted_out),
    "complaint_rate": lambda o: float(o.complained),
    "touches_per_prospect": lambda o: float(o.touches),
}


def summary(result: ArmResult, segment: str | None = None) -> dict[str, float]:
    """Rates over prospects (a prospect counts once), per-touch ratios, channel mix."""
    rows = [o for o in result.outcomes if segment is None or o.segment == segment]
    n = len(rows)
    touches = sum(o.touches for o in rows)
    responses = sum(o.responses for o in rows)
    opt_outs = sum(o.opted_out for o in rows)
    complaints = sum(o.complained for o in rows)
    out: dict[str, float] = {name: sum(f(o) for o in rows) / n for name, f in METRICS.items()}
    out["prospects"] = n
    out["touches"] = touches
    out["responses_per_touch"] = responses / touches if touches else 0.0
    out["opt_outs_per_1000_touches"] = 1000 * opt_outs / touches if touches else 0.0
    out["complaints_per_1000_touches"] = 1000 * complaints / touches if touches else 0.0
    out["touches_after_conversation"] = sum(o.after_conversation for o in rows) / n
    return out


def path_changes(a: ArmResult, b: ArmResult) -> float:
    """The share of prospects whose channels (in order) differ between two arms."""
    pairs = list(zip(a.outcomes, b.outcomes, strict=True))
    return sum(x.path != y.path for x, y in pairs) / len(pairs)


def channel_mix(result: ArmResult, segment: str | None = None) -> dict[str, float]:
    counts = result.channels if segment is None else result.segment_channels[segment]
    total = sum(counts.values()) or 1
    return {ch: counts[ch] / total for ch in CHANNELS}


class Paired(NamedTuple):
    """Arm a minus arm b on one metric, over the same prospects: mean and its standard error."""

    diff: float
    se: float

    @property
    def low(self) -> float:  # a 95 % interval
        return self.diff - 1.96 * self.se

    @property
    def high(self) -> float:
        return self.diff + 1.96 * self.se


def paired(a: ArmResult, b: ArmResult, metric: str, segment: str | None = None) -> Paired:
    """Per-prospect differences (common random numbers), so the noise is that of the pairs."""
    f = METRICS[metric]
    diffs = [
        f(x) - f(y)
        for x, y in zip(a.outcomes, b.outcomes, strict=True)
        if segment is None or x.segment == segment
    ]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return Paired(statistics.fmean(diffs), se)
