"""The simulated population: segments, hidden channel preferences, propensity, calibration.

Everything is drawn from named seeded streams (`random.Random(f"{seed}:{what}:{index}")`), one
per prospect and purpose, so a parameter that changes one draw never shifts another: every arm
sees the same prospects, and a flag such as `--deviate-share` changes only the prospects it
concerns.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from operators.events import CHANNELS, Channel
from operators.timeutil import to_ms

SEGMENTS: Final = ("digital_native", "digital_adopter", "traditional")
SEGMENT_AGES: Final = {
    "digital_native": "25-35",
    "digital_adopter": "36-45",
    "traditional": "46-55",
}
# The observed response rates ("social" is LinkedIn), used as each segment's relative channel
# affinity. Chat: `SimConfig.chat_rate`.
OBSERVED: Final[dict[str, dict[Channel, float]]] = {
    "digital_native": {"sms": 0.47, "email": 0.23, "linkedin": 0.34, "phone": 0.12},
    "digital_adopter": {"sms": 0.28, "email": 0.41, "linkedin": 0.19, "phone": 0.18},
    "traditional": {"sms": 0.19, "email": 0.52, "linkedin": 0.08, "phone": 0.31},
}
CHAT_RATE: Final = 0.15
EQUAL_MIX: Final = {s: 1.0 for s in SEGMENTS}
P_MAX: Final = 0.95  # no touch is answered for certain, however keen the prospect
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


@dataclass(frozen=True)
class SimConfig:
    """One population and its behaviour; every field is a flag of `benchmarks/sim_adaptive.py`.

    The defaults are the calibrated model of issue 15: `basic` answered by about 31 % of
    prospects over the horizon (`calibrate`), a fifth deviating from their segment, answers
    elsewhere at a fifth of the own-channel rate, responsiveness spread as an exponential.
    `base_response` None is the uncalibrated model of the first study (`first_study`).
    """

    prospects: int = 3000
    seed: int = 7
    concentration: float | None = 10.0  # Beta spread of affinities; None: the segment's exactly
    chat_rate: float = CHAT_RATE
    enroll_hours: EnrollHours = "business"
    horizon_days: int = 21
    segment_mix: Mapping[str, float] = field(default_factory=lambda: dict(EQUAL_MIX))
    deviate_share: float = 0.2  # prospects whose hidden preferences are another segment's
    base_response: float | None = 0.31  # basic's target response rate over the horizon
    cross_share: float = 0.2  # touched elsewhere: answers on the own top channel this often
    propensity_shape: float | None = 1.0  # Gamma shape of responsiveness (mean 1); None: all 1
    # Campaigns: the same sequence again every `campaign_every_days` (past basic's 12 days and
    # its 30-day cooldown), so what the engine learned in one campaign meets the next.
    campaigns: int = 1
    campaign_every_days: int = 45


def first_study(**fields: Any) -> SimConfig:
    """The first study's model (issue 15 calls it uncalibrated): the segment rates are per-touch
    answer rates, every prospect as responsive as the next, nobody deviating or answering
    elsewhere; `fields` as `SimConfig`'s (prospects, seed, concentration, ...)."""
    legacy = SimConfig(
        base_response=None, deviate_share=0.0, cross_share=0.0, propensity_shape=None
    )
    return replace(legacy, **fields)


@dataclass(frozen=True)
class SimProspect:
    id: str
    index: int
    segment: str  # the declared one (the profile's), which the engine's priors see
    hidden: str  # the segment whose preferences the prospect really has
    timezone: str
    enroll_ms: int
    affinity: dict[Channel, float]  # hidden relative answer rate per channel
    propensity: float  # responsiveness, mean 1 over the population

    @property
    def top(self) -> Channel:
        """The hidden preferred channel: highest affinity (ties: `CHANNELS` order)."""
        return max(CHANNELS, key=lambda c: self.affinity[c])


def parse_mix(text: str) -> dict[str, float]:
    """`digital_native=2,traditional=1`: relative weights (a segment left out has none)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in SEGMENTS:
            msg = f"unknown segment {name!r} in --segment-mix; known: {', '.join(SEGMENTS)}"
            raise ValueError(msg)
        value = float(weight) if weight else 1.0
        if not value >= 0 or math.isinf(value):
            msg = f"segment weight must be a finite number >= 0, not {weight!r}"
            raise ValueError(msg)
        mix[name] = value
    if not sum(mix.values()) > 0:
        msg = "--segment-mix needs a positive weight"
        raise ValueError(msg)
    return mix


def assign_segments(n: int, mix: Mapping[str, float]) -> list[str]:
    """Deterministic apportionment: prospect i takes the segment furthest below its share of
    the first i + 1 (ties: `SEGMENTS` order). An equal mix gives native, adopter, traditional,
    native, ... so every prefix is as balanced as it can be."""
    total = sum(mix.values())
    shares = {s: mix.get(s, 0.0) / total for s in SEGMENTS}
    counts = dict.fromkeys(SEGMENTS, 0)
    out = []
    for i in range(n):
        best = max(SEGMENTS, key=lambda s: (i + 1) * shares[s] - counts[s] if shares[s] else -1e18)
        counts[best] += 1
        out.append(best)
    return out


def affinity(segment: str, cfg: SimConfig, index: int) -> dict[Channel, float]:
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


def hidden_segment(segment: str, cfg: SimConfig, index: int) -> str:
    """With probability `deviate_share`, another segment's preferences ("a 28-year-old behaved
    like a 48-year-old"), one of the others at random; its own stream, so the share moves only
    the deviators."""
    rng = random.Random(f"{cfg.seed}:deviate:{index}")
    u, pick = rng.random(), rng.random()
    if u >= cfg.deviate_share:
        return segment
    others = [s for s in SEGMENTS if s != segment]
    return others[min(int(pick * len(others)), len(others) - 1)]


def propensity(cfg: SimConfig, index: int) -> float:
    """Responsiveness: Gamma(shape, 1 / shape), mean 1 (some answer much, many hardly)."""
    if cfg.propensity_shape is None:
        return 1.0
    rng = random.Random(f"{cfg.seed}:propensity:{index}")
    return rng.gammavariate(cfg.propensity_shape, 1.0 / cfg.propensity_shape)


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
    """The population: segment by apportionment of `segment_mix`, zone and enrollment from the
    prospect's own stream, hidden segment, affinities and propensity from theirs."""
    out = []
    for i, segment in enumerate(assign_segments(cfg.prospects, cfg.segment_mix)):
        rng = random.Random(f"{cfg.seed}:prospect:{i}")
        zone = rng.choice(ZONES)
        start = enroll_time(zone, cfg, rng)
        hidden = hidden_segment(segment, cfg, i)
        out.append(
            SimProspect(
                f"p{i:06d}",
                i,
                segment,
                hidden,
                zone,
                start,
                affinity(hidden, cfg, i),
                propensity(cfg, i),
            )
        )
    return out


# -- answer probabilities and calibration --------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How a prospect answers a touch: `answer[c]` on the channel touched, and, touched on
    another channel than their own top one and not answering there, `cross` on the top one."""

    answer: dict[Channel, float]
    cross: float


def behaviour(p: SimProspect, scale: float | None, cfg: SimConfig) -> Behaviour:
    """Per-touch probabilities: the affinity itself (uncalibrated), else `scale` x propensity x
    affinity, at most `P_MAX`."""
    if scale is None:
        answer = dict(p.affinity)
    else:
        answer = {c: min(P_MAX, scale * p.propensity * p.affinity[c]) for c in CHANNELS}
    return Behaviour(answer, min(P_MAX, cfg.cross_share * answer[p.top]))


def silent_probability(
    p: SimProspect, scale: float | None, cfg: SimConfig, path: Sequence[str]
) -> float:
    """The chance the prospect answers none of the touches of `path` (a fixed channel list)."""
    b = behaviour(p, scale, cfg)
    silent = 1.0
    for ch in path:
        silent *= 1.0 - b.answer[ch]  # type: ignore[index]
        if ch != p.top:
            silent *= 1.0 - b.cross
    return silent


def calibrate(prospects: Sequence[SimProspect], cfg: SimConfig, path: Sequence[str]) -> float:
    """The per-touch scale at which a fixed sequence of channels `path` (basic's) is answered by
    `base_response` of the population: bisection on the exact expectation. Before its first
    answer basic sends exactly its steps (its only extra touch follows an open), so this is its
    response rate up to opt-outs, complaints and the caps."""
    target = cfg.base_response
    assert target is not None
    if not 0 < target < 1:
        msg = f"--base-response must lie in (0, 1), not {target}"
        raise ValueError(msg)

    def rate(scale: float) -> float:
        return 1.0 - sum(silent_probability(p, scale, cfg, path) for p in prospects) / len(
            prospects
        )

    low, high = 0.0, 1.0
    while rate(high) < target:
        high *= 2
        if high > 1e6:
            msg = f"--base-response {target} is out of reach for this population"
            raise ValueError(msg)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if rate(mid) < target else (low, mid)
    return (low + high) / 2
