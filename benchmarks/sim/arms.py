"""The arms: one policy and one way of contacting every prospect each (common random numbers)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from operators.events import CHANNELS, Channel
from operators.policy import DEFAULT_CONFIG, Policy, parse_policy
from operators.preference import DEFAULT_SEGMENT, PreferenceConfig

ADAPTIVE: Final = "adaptive"
BASIC: Final = "basic"
PRIORS_ONLY: Final = "adaptive_priors_only"
NO_INFO: Final = "adaptive_no_information"
ORACLE: Final = "adaptive_oracle"
LIGHT_MISSES: Final = "adaptive_light_misses"
LIGHT_MISS_WEIGHT: Final = 0.25  # a quarter: calibrated touches are answered ~4-8x less often
HUGE_STRENGTH: Final = 1e12  # a prior this strong never moves: learning switched off
FLAT_RATE: Final = 0.25
# "Flat" priors step down by this along `auto_order`. Exactly equal priors would not do: with
# learning off, one miss still lowers an estimate by ~1e-13 and breaks the tie, so the ranking
# would still rotate away from every unanswered channel (that is learning, in effect).
FLAT_STEP: Final = 1e-6


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


def with_preference(
    policy: Policy,
    *,
    learning: bool = True,
    priors: bool = True,
    wait: bool = True,
    miss_weight: float | None = None,
) -> Policy:
    """`policy` with learning (`prior_strength` so large that evidence never moves an estimate),
    the segment priors (every segment: `FLAT_RATE`, less `FLAT_STEP` per place in `auto_order`,
    so the ranking is `auto_order` until evidence moves it) and/or waiting for the best channel
    (`wait_hours` 0) switched off, or misses weighted `miss_weight`."""
    pref = policy.preference
    order = policy.requests.auto_order
    flat: dict[Channel, float] = {c: FLAT_RATE - FLAT_STEP * order.index(c) for c in order}
    for c in CHANNELS:
        flat.setdefault(c, FLAT_RATE - FLAT_STEP * len(order))
    new: PreferenceConfig = msgspec.structs.replace(
        pref,
        prior_strength=pref.prior_strength if learning else HUGE_STRENGTH,
        priors=pref.priors if priors else {DEFAULT_SEGMENT: flat},
        wait_hours=pref.wait_hours if wait else 0,
        miss_weight=pref.miss_weight if miss_weight is None else miss_weight,
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
    oracle: bool = False  # the prospect states their hidden top channel (`prefer`) up front


def arms(policy: Policy | None = None, names: Iterable[str] | None = None) -> list[Arm]:
    """The arms, by name: `basic` is the control; the `adaptive_*` ablations switch learning,
    the segment priors or waiting off; `auto_requests` sends `auto` touch_requests at basic's
    step times instead of a sequence, the campaign tool stopping after a reply as a sequence
    would."""
    p = policy or sim_policy()
    every = [
        Arm(BASIC, "basic (fixed channels)", p, BASIC),
        Arm(ADAPTIVE, "adaptive (segment priors + learning + waiting)", p, ADAPTIVE),
        Arm(
            PRIORS_ONLY,
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
            NO_INFO,
            "adaptive, flat priors, learning off",
            with_preference(p, learning=False, priors=False),
            ADAPTIVE,
        ),
        Arm(
            "adaptive_no_wait",
            "adaptive, best channel allowed now (no waiting)",
            with_preference(p, wait=False),
            ADAPTIVE,
        ),
        Arm(
            LIGHT_MISSES,
            f"adaptive, an unanswered touch weighs {LIGHT_MISS_WEIGHT} of a miss",
            with_preference(p, miss_weight=LIGHT_MISS_WEIGHT),
            ADAPTIVE,
        ),
        Arm("auto_requests", "auto touch_requests at basic's times", p, None),
        Arm(
            ORACLE,
            "adaptive, each prospect's hidden top channel stated up front (a ceiling)",
            p,
            ADAPTIVE,
            oracle=True,
        ),
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
