"""One prospect explained (`touchflow inspect`, CONTRACT.md section 8), from its state: pure.

Everything is read as of one instant `now`, on a copy: open touches whose answer window has
closed by then are settled as misses first (as the engine does lazily before each decision), so
the fatigue score and the learned ranking are the ones the next decision would use. For each
channel, `Rules.verdict` is asked about a campaign touch (a request: not an answer to the
prospect's own action, not transactional) now, then again at each time a rule says it clears,
until one allows it or a rule holds for good.
"""

import math
from typing import Any, Final

from operators import fatigue, preference
from operators.events import CHANNEL_INDEX, CHANNELS
from operators.fatigue import Fatigue
from operators.policy import Policy
from operators.rules import Rules
from operators.scorecard_facts import Contact, ProspectFacts
from operators.state import ProspectState, decode_state, encode_state
from operators.state_records import AUTO, Enrollment, Exempt, Kind, Pending, Props
from operators.timeutil import DAY_MS, format_ts

_PROBES: Final = 64  # verdicts asked per channel before giving up on a next time


def settled(state: ProspectState, now: int, policy: Policy) -> tuple[Any, Fatigue | None]:
    """(answers, fatigue) with every answer window closed by `now` settled; `state` unchanged."""
    answers, tired = state.answers, state.fatigue
    if state.open_touches is None:
        return answers, tired
    tracked = preference.settle(state.open_touches, answers, now, policy.preference)
    for ch, at, declining in tracked.misses:
        tired = fatigue.on_unanswered_touch(tired, ch, at, policy.fatigue, declining=declining)
    return tracked.stats, tired


def channel_order(state: ProspectState, answers: Any, policy: Policy) -> tuple[int, ...]:
    """The engine's channel order for `auto`: learned ranking under the prospect's stances."""
    auto = tuple(CHANNEL_INDEX[c] for c in policy.requests.auto_order)
    learned = preference.ranked(answers, state.segment, policy.preference, auto)
    return preference.apply_stances(learned, state.only, state.prefer, state.avoid)


def preferred_channel(state: ProspectState, now: int, policy: Policy) -> str | None:
    """The first channel an `auto` touch would try now, None if the stances leave none."""
    order = channel_order(state, settled(state, now, policy)[0], policy)
    return CHANNELS[order[0]] if order else None


def inspect(
    state: ProspectState, rules: Rules, now: int, *, facts: ProspectFacts | None = None
) -> dict[str, Any]:
    """The prospect as a JSON-ready dict (`touchflow inspect --json`). `facts`: its scorecard
    facts, which keep its last decision records and the profile fields the state does not
    (live, they are checkpointed with the state; a replay builds the same)."""
    policy = rules.policy
    s = decode_state(encode_state(state))  # a copy: settling must not change the real state
    s.answers, s.fatigue = settled(state, now, policy)
    order = channel_order(s, s.answers, policy)
    return {
        "prospect": s.prospect,
        "as_of": format_ts(now),
        "last_event": format_ts(s.clock) if s.clock else None,
        "profile": _profile(s, facts.contact if facts is not None else None),
        "zones": list(rules.zones(s)),
        "consent": {c: bool(s.consent >> i & 1) for i, c in enumerate(CHANNELS)},
        "suppressions": _suppressions(s),
        "cooldowns": _cooldowns(s, now),
        "customer": s.customer,
        "fatigue": {
            "score": fatigue.score(s.fatigue, now, policy.fatigue),
            "class": fatigue.fatigue_class(s.fatigue, now, policy.fatigue),
        },
        "ranking": _ranking(s, policy, order),
        "channels": {c: _next_allowed(rules, s, i, now) for i, c in enumerate(CHANNELS)},
        "pending": [_pending(p) for p in s.pending or ()],
        "sequences": [_enrollment(e, policy) for e in s.sequences or ()],
        "decisions": [r.record(s.prospect) for r in (facts.decisions if facts else None) or ()],
    }


def _profile(s: ProspectState, contact: Contact | None) -> dict[str, Any]:
    """The profile events' fields, as the state and the facts keep them, in the event's order."""
    c = contact or Contact()
    fields = {
        "timezone": s.timezone,
        "email": c.email,
        "phone": s.phone,
        "region": s.region,
        "segment": s.segment,
        "lead_source": c.lead_source,
        "account": c.account,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _names(mask: int) -> list[str]:
    return [c for i, c in enumerate(CHANNELS) if mask >> i & 1]


def _suppressions(s: ProspectState) -> dict[str, Any]:
    return {
        "do_not_contact": s.do_not_contact,
        "opted_out_all": s.opted_out_all,
        "opted_out": _names(s.opted_out),
        "bounced": _names(s.bounced),
        "complained": _names(s.complained),
        "avoid": _names(s.avoid),
        "only": CHANNELS[s.only] if s.only != AUTO else None,
        "prefer": CHANNELS[s.prefer] if s.prefer != AUTO else None,
    }


def _cooldowns(s: ProspectState, now: int) -> list[dict[str, str]]:
    ends = (
        ("cooldown.complaint", s.complaint_until),
        ("cooldown.negative", s.negative_until),
        ("cooldown.sequence", s.sequence_until),
        ("cooldown.deal_lost", s.deal_lost_until),
        ("paused.out_of_office", s.paused_until),
    )
    return [{"rule": rule, "until": format_ts(end)} for rule, end in ends if end > now]


def _ranking(s: ProspectState, policy: Policy, order: tuple[int, ...]) -> list[dict[str, Any]]:
    """Every channel, best first by the learned estimate; `order` is what `auto` would try."""
    stats = s.answers or (0,) * (2 * len(CHANNELS))
    priors = preference.priors_for(s.segment, policy.preference)
    learned = preference.ranked(s.answers, s.segment, policy.preference, range(len(CHANNELS)))
    return [
        {
            "channel": CHANNELS[c],
            "estimate": preference.estimate(s.answers, c, s.segment, policy.preference),
            "prior": priors[c],
            "hits": stats[2 * c],
            "misses": stats[2 * c + 1],
            "auto_rank": order.index(c) + 1 if c in order else None,
        }
        for c in learned
    ]


def _clears_at(rules: Rules, s: ProspectState, rule: str, now: int) -> int | None:
    """When a rule that `verdict` gives no retry time for ends by itself (None: never)."""
    ends = {
        "cooldown.complaint": s.complaint_until,
        "cooldown.negative": s.negative_until,
        "cooldown.sequence": s.sequence_until,
        "cooldown.deal_lost": s.deal_lost_until,
    }
    if rule in ends:
        return ends[rule]
    if rule == fatigue.RULE and s.fatigue is not None:
        cfg = rules.policy.fatigue
        milli, at = fatigue.decay(s.fatigue, now, cfg)
        pause = math.floor(cfg.pause * fatigue.MILLI + 0.5)
        if milli < pause:
            return now
        # Paused while the score, rounded up to a thousandth, is at least `pause`: it clears
        # once the curve is down to pause - 1 thousandth (or below half of one, when 0).
        target = pause - 1 if pause > 1 else 0.5
        wait = cfg.half_life_days * DAY_MS * math.log2(milli / target)
        return at + math.ceil(wait) + 1
    return None


def _next_allowed(rules: Rules, s: ProspectState, ch: int, now: int) -> dict[str, Any]:
    """The rule stopping a campaign touch on `ch` now, and the next time one would be allowed."""
    t = now
    first_rule: str | None = None
    last_rule: str | None = None
    for probe in range(_PROBES):
        rule, retry = rules.verdict(s, ch, t, Exempt.NONE)  # a campaign touch
        if probe == 0:
            first_rule = rule
        if rule is None:
            return {"rule": first_rule, "next_allowed": format_ts(t), "held_by": last_rule}
        last_rule = rule
        if retry is None:
            retry = _clears_at(rules, s, rule, t)
        if retry is None or retry <= t:
            break
        t = retry
    return {"rule": first_rule, "next_allowed": None, "held_by": last_rule}


def _pending(p: Pending) -> dict[str, Any]:
    if p.kind is Kind.STEP:
        kind = "sequence step"
    elif p.kind is Kind.FOLLOW_UP:
        kind = "follow-up"
    elif p.props & Props.ARBITRATING:
        kind = "request (arbitration window)"
    else:
        kind = "deferred"
    return {
        "due": format_ts(p.due),
        "channel": CHANNELS[p.channel] if p.channel != AUTO else "auto",
        "reason": p.reason,
        "topic": p.topic,
        "kind": kind,
        "held": bool(p.props & Props.HELD),
        "cause": p.cause,
    }


def _enrollment(e: Enrollment, policy: Policy) -> dict[str, Any]:
    definition = policy.sequences.get(e.sequence)
    return {
        "sequence": e.sequence,
        "next_step": e.step + 1,
        "steps": len(definition.steps) if definition is not None else None,
        "started": format_ts(e.started),
        "last_sent": format_ts(e.last_sent) if e.last_sent else None,
    }
