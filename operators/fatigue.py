"""Fatigue: how worn out a prospect is by our touches, as a score that decays with time.

Caps bound volume in fixed windows; fatigue follows the prospect: unanswered touches raise it by
how intrusive their channel is, engagement lowers it, complaints, opt-outs and a falling answer
rate raise it, and it halves every `half_life_days` without news. A saturated prospect gets
lower caps, and past `pause` only exempt touches go out (rule `fatigue`).

State is one small tuple of ints, `(score in milli-units, ms of that score)`, rounded to whole
thousandths at every update, so a checkpoint holds no float and a replay lands on the same
integers (`math.exp2`/`math.log2` are IEEE-754 doubles; C libraries differ at most in the last
bit, which could move a rounded thousandth only on a vanishingly rare tie).
"""

import math
from typing import Annotated, Final, Literal

from msgspec import Meta, Struct, field

from operators.events import CHANNELS, Channel
from operators.timeutil import DAY_MS

# (score in thousandths, ms since the epoch at which the stored score holds).
Fatigue = tuple[int, int]
FatigueClass = Literal["undersaturated", "on_target", "saturated"]

RULE: Final = "fatigue"
MILLI: Final = 1000

Amount = Annotated[float, Meta(ge=0, le=1_000)]  # bounded: a score must stay finite


def _default_weights() -> dict[Channel, float]:
    """How intrusive an unanswered touch is, by channel.

    An email or a chat message waits in an inbox or a widget (1.0); a LinkedIn message is
    personal and visible to the prospect's network (1.2); an SMS buzzes a personal phone (1.5);
    a call interrupts whatever the prospect is doing (2.0).
    """
    return {"email": 1.0, "linkedin": 1.2, "chat": 1.0, "sms": 1.5, "phone": 2.0}


_DEFAULT_WEIGHTS: Final = _default_weights()


class FatigueConfig(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Weights, penalties and thresholds, in score units (policy section `[fatigue]`).

    The defaults make a week of a full cadence left unanswered (three emails, a call, an SMS:
    about 5 after decay) saturated, and about two such weeks paused. One engagement takes off
    two unanswered emails; a complaint alone saturates; an opt-out of one channel weighs as much
    as two unanswered SMS. A channel missing from `weights` keeps its default weight.
    """

    half_life_days: Annotated[float, Meta(gt=0, le=3_650)] = 7.0
    weights: dict[Channel, Amount] = field(default_factory=_default_weights)
    engagement_relief: Amount = 2.0  # an open, click, reply or answered call
    complaint_penalty: Amount = 5.0
    opt_out_penalty: Amount = 3.0
    declining_penalty: Amount = 1.0  # added to a miss that follows an answered touch
    on_target: Amount = 2.0  # from here: the pressure we mean to apply
    saturated: Amount = 5.0  # from here: caps times `saturated_cap_factor`
    pause: Amount = 8.0  # from here: non-exempt touches pause (rule `fatigue`)
    saturated_cap_factor: Annotated[float, Meta(gt=0, le=1)] = 0.5

    def __post_init__(self) -> None:
        if not self.on_target < self.saturated < self.pause:
            msg = (
                f"thresholds must rise: on_target {self.on_target} < saturated "
                f"{self.saturated} < pause {self.pause} - at `$.on_target`"
            )
            raise ValueError(msg)


def _milli(units: float) -> int:
    """Score units to integer thousandths, rounding half up (not to even: fewer surprises)."""
    return math.floor(units * MILLI + 0.5)


def _value(f: Fatigue | None, now: int, cfg: FatigueConfig) -> float:
    """The exact decayed score at `now` in thousandths (never earlier than the stored time)."""
    if f is None or f[0] == 0 or now <= f[1]:
        return float(f[0]) if f is not None else 0.0
    return f[0] * math.exp2((f[1] - now) / (cfg.half_life_days * DAY_MS))


def decay(f: Fatigue | None, now: int, cfg: FatigueConfig) -> Fatigue:
    """The state decayed to `now`, on the exact decay curve so that decaying often is the same
    as decaying once (within a thousandth).

    Rounding a decayed score at every step could stall it (a minute of decay is less than half
    a thousandth) or speed it up, so the score is rounded up to a whole thousandth and its time
    set to the instant the curve reaches that value: the curve goes on from there unchanged.
    Times never go backwards: a `now` before the stored time changes nothing.
    """
    if f is None:
        return (0, now)
    score, at = f
    if now <= at:
        return f
    exact = _value(f, now, cfg)
    if exact < 0.5:  # below half a thousandth: rested
        return (0, now)
    new = math.ceil(exact)
    if new >= score:
        return f
    half_life = cfg.half_life_days * DAY_MS
    reached = at + math.floor(half_life * math.log2(score / new))
    return (new, min(max(reached, at), now))


def _add(f: Fatigue | None, units: float, now: int, cfg: FatigueConfig) -> Fatigue:
    """Decay to `now` (or the stored time, if later), then add `units`, never below zero."""
    at = now if f is None else max(now, f[1])
    return (max(0, _milli(_value(f, at, cfg) / MILLI + units)), at)


def weight(ch: int, cfg: FatigueConfig) -> float:
    """The intrusiveness of an unanswered touch on channel index `ch`."""
    name = CHANNELS[ch]
    return cfg.weights.get(name, _DEFAULT_WEIGHTS[name])


def on_unanswered_touch(
    f: Fatigue | None, ch: int, now: int, cfg: FatigueConfig, *, declining: bool = False
) -> Fatigue:
    """A touch on `ch` went unanswered (its response window closed at `now`).

    `declining`: the channel's previous touch was answered and this one was not, so the
    prospect's answer rate is falling (`operators.preference` reports it with each miss).
    """
    return _add(f, weight(ch, cfg) + (cfg.declining_penalty if declining else 0.0), now, cfg)


def on_engagement(f: Fatigue | None, now: int, cfg: FatigueConfig) -> Fatigue:
    """The prospect engaged (opened, clicked, replied, answered): they are less worn out."""
    return _add(f, -cfg.engagement_relief, now, cfg)


def on_complaint(f: Fatigue | None, now: int, cfg: FatigueConfig) -> Fatigue:
    """A complaint: the clearest sign we touched too much."""
    return _add(f, cfg.complaint_penalty, now, cfg)


def on_opt_out(f: Fatigue | None, now: int, cfg: FatigueConfig) -> Fatigue:
    """An opt-out of a channel: the other channels should ease off too."""
    return _add(f, cfg.opt_out_penalty, now, cfg)


def score(f: Fatigue | None, now: int, cfg: FatigueConfig) -> float:
    """The score at `now` in units (to a thousandth, as the thresholds are compared)."""
    return decay(f, now, cfg)[0] / MILLI


def fatigue_class(f: Fatigue | None, now: int, cfg: FatigueConfig) -> FatigueClass:
    """`saturated` at or above `saturated`, `on_target` at or above `on_target`, else
    `undersaturated`; compared in whole thousandths, so a boundary is exact."""
    milli = decay(f, now, cfg)[0]
    if milli >= _milli(cfg.saturated):
        return "saturated"
    return "on_target" if milli >= _milli(cfg.on_target) else "undersaturated"


def cap_factor(f: Fatigue | None, now: int, cfg: FatigueConfig) -> float:
    """The factor for every cap now: `saturated_cap_factor` when saturated, else 1."""
    saturated = fatigue_class(f, now, cfg) == "saturated"
    return cfg.saturated_cap_factor if saturated else 1.0


def scaled_cap(cap: int, factor: float) -> int:
    """A cap times `factor`, floored but at least 1: a saturated prospect still gets a touch
    that answers them. A cap of 0 stays 0. The epsilon keeps 100 * 0.29 at 29, not 28."""
    if cap <= 0:
        return cap
    return max(1, math.floor(cap * factor + 1e-9))


def paused(f: Fatigue | None, now: int, cfg: FatigueConfig) -> bool:
    """True at or above `pause`: only exempt touches (answers to the prospect) go out."""
    return decay(f, now, cfg)[0] >= _milli(cfg.pause)
