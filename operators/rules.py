"""The verdict for one candidate touch: which rule, if any, stops it now, and until when.

This is the hot path (every trigger, request and timer goes through `Rules.verdict`), so the
policy is compiled once into flat tuples indexed by channel, rule names are built once, and the
check is a few integer comparisons over a history that holds a handful of touches.
"""

from typing import Final, Literal, NamedTuple

from operators import fatigue, preference
from operators.emit import channel_choice
from operators.events import CHANNEL_INDEX, CHANNELS
from operators.policy import Policy
from operators.quiet_hours import next_allowed, phone_zones, seconds_of_day
from operators.records import ChannelChoice
from operators.state import ProspectState
from operators.state_records import AUTO, Candidate, Exempt, Touch
from operators.timeutil import DAY_MS, HOUR_MS

QUIET_HOURS: Final = "quiet_hours"
GAP: Final = "gap"
_OWN_ACTION: Final = int(Exempt.OWN_ACTION)  # ints: an IntFlag operation costs ~0.4 us
_TRANSACTIONAL: Final = int(Exempt.TRANSACTIONAL)


class Window(NamedTuple):
    """One compiled cap window."""

    ms: int
    total: int | None
    per_channel: tuple[int | None, ...]  # indexed by channel
    exempt_own_action: bool
    total_rule: str
    channel_rules: tuple[str, ...]


def _mask(channels: list[str]) -> int:
    bits = 0
    for name in channels:
        bits |= 1 << CHANNEL_INDEX[name]
    return bits


def _names(template: str) -> tuple[str, ...]:
    return tuple(template.format(c) for c in CHANNELS)


class Rules:
    """The policy compiled for fast verdicts. Immutable once built."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.windows = tuple(
            Window(
                ms=w.hours * HOUR_MS,
                total=w.total,
                per_channel=tuple(w.per_channel.get(c) for c in CHANNELS),
                exempt_own_action=w.exempt_own_action,
                total_rule=f"cap.total.{w.name}",
                channel_rules=_names("cap.{}." + w.name),
            )
            for w in policy.caps
        )
        # Rules that clear as touches age out: a deferrable touch waits for them (capacity);
        # a touch on another channel cannot help with a channel's own caps (`channel_caps`).
        self.channel_caps = frozenset(r for w in self.windows for r in w.channel_rules)
        self.capacity = frozenset({GAP, *self.channel_caps, *(w.total_rule for w in self.windows)})
        self.gap_ms = policy.gap.hours * HOUR_MS
        self.gap_exempt = policy.gap.exempt_own_action
        self.horizon_ms = max([self.gap_ms, *(w.ms for w in self.windows)])
        qh = policy.quiet_hours
        self.quiet_mask = _mask(list(qh.channels))
        self.quiet_default = (seconds_of_day(qh.start), seconds_of_day(qh.end))
        self.quiet_regions = {
            region: (seconds_of_day(h.start), seconds_of_day(h.end))
            for region, h in qh.regions.items()
        }
        self.fallback_zones = tuple(qh.fallback_timezones)
        self.consent_mask = _mask(list(policy.consent.required))
        self.complaint_ms = policy.cooldowns.complaint_days * DAY_MS
        self.negative_ms = policy.cooldowns.negative_reply_days * DAY_MS
        self.max_defer_ms = policy.requests.max_defer_hours * HOUR_MS
        self.fatigue = policy.fatigue
        self.rule_opt_out = _names("suppressed.opt_out.{}")
        self.rule_bounce = _names("suppressed.bounce.{}")
        self.rule_complaint = _names("suppressed.complaint.{}")
        self.rule_consent = _names("consent.{}")
        self.rule_avoid = _names("preference.avoid.{}")
        self.rule_only = _names("preference.only.{}")

    def verdict(
        self, state: ProspectState, ch: int, now: int, exempt: int
    ) -> tuple[str | None, int | None]:
        """(rule, retry_at) for a touch on channel index `ch` at `now`; `exempt`: `Exempt` bits.

        rule None: allowed now. Otherwise the first rule that stops it, and for rules that
        clear with time (caps, gap, quiet hours) the earliest time it could pass that rule;
        None for rules that do not clear by themselves (suppression, consent, cooldowns).
        """
        bit = 1 << ch
        # Suppression and consent: never skipped, not even for transactional touches.
        if state.do_not_contact:
            return "suppressed.do_not_contact", None
        if state.opted_out_all:
            return "suppressed.opt_out.all", None
        if state.opted_out & bit:
            return self.rule_opt_out[ch], None
        if state.bounced & bit:
            return self.rule_bounce[ch], None
        if state.complained & bit:
            return self.rule_complaint[ch], None
        if self.consent_mask & bit and not state.consent & bit:
            return self.rule_consent[ch], None
        if state.avoid & bit:
            return self.rule_avoid[ch], None
        if state.only != AUTO and state.only != ch:
            return self.rule_only[state.only], None
        if not exempt & _TRANSACTIONAL:
            if state.complaint_until > now:
                return "cooldown.complaint", None
            if state.negative_until > now:
                return "cooldown.negative", None
            if not exempt & _OWN_ACTION:  # campaign and sequence touches, not triggers
                if state.sequence_until > now:
                    return "cooldown.sequence", None
                if state.deal_lost_until > now:
                    return "cooldown.deal_lost", None
            factor = 1.0
            if state.fatigue is not None:
                if not exempt & _OWN_ACTION and fatigue.paused(state.fatigue, now, self.fatigue):
                    return fatigue.RULE, None
                factor = fatigue.cap_factor(state.fatigue, now, self.fatigue)
            touches = state.touches
            if touches:
                stopped = self._caps(touches, ch, now, exempt & _OWN_ACTION, factor)
                if stopped is not None:
                    return stopped
                if self.gap_ms and not (exempt & _OWN_ACTION and self.gap_exempt):
                    last = touches[-1].ts
                    if now - last < self.gap_ms:
                        return GAP, last + self.gap_ms
        if self.quiet_mask & bit:
            opens = self._quiet_opening(state, now)
            if opens != now:
                return QUIET_HOURS, opens
        return None, None

    def _caps(
        self,
        touches: list[Touch],
        ch: int,
        now: int,
        exempt: int,
        factor: float = 1.0,
    ) -> tuple[str, int | None] | None:
        """The first cap window that is full, with the time its oldest blocking touch expires.

        `factor` < 1 lowers every cap for a saturated prospect (never below 1).
        """
        for w in self.windows:
            if exempt and w.exempt_own_action:
                continue
            since = now - w.ms
            on_channel = total = 0
            for t in touches:
                if t.ts > since:
                    total += 1
                    if t.channel == ch:
                        on_channel += 1
            limit = w.per_channel[ch]
            total_cap = w.total
            if factor != 1.0:
                limit = fatigue.scaled_cap(limit, factor) if limit is not None else None
                total_cap = fatigue.scaled_cap(total_cap, factor) if total_cap is not None else None
            if limit is not None and on_channel >= limit:
                times = [t.ts for t in touches if t.ts > since and t.channel == ch]
                retry = times[on_channel - limit] + w.ms if limit else None
                return w.channel_rules[ch], retry
            if total_cap is not None and total >= total_cap:
                times = [t.ts for t in touches if t.ts > since]
                retry = times[total - total_cap] + w.ms if total_cap else None
                return w.total_rule, retry
        return None

    def zones(self, state: ProspectState) -> tuple[str, ...]:
        """The prospect's possible zones: profile zone, else the phone's zones, else fallback."""
        if state.timezone:
            return (state.timezone,)
        if state.phone:
            return phone_zones(state.phone) or self.fallback_zones
        return self.fallback_zones

    def _quiet_opening(self, state: ProspectState, now: int) -> int | None:
        start_s, end_s = self.quiet_regions.get(state.region or "", self.quiet_default)
        return next_allowed(now, self.zones(state), start_s, end_s)


# -- `auto` touches: which channel, or wait for a better one --------------------------------------


class ChannelVerdict(NamedTuple):
    """One candidate channel of an `auto` touch: the rule holding it now (None: allowed) and
    when it could pass (None: not by itself)."""

    channel: int
    rule: str | None
    retry: int | None


class Pick(NamedTuple):
    """What an `auto` touch does now: `send` on `channel` (with `backup`, AUTO if none);
    `wait` for `channel` until `retry` (rule `preference.wait`); or `hold` on `channel`, the
    first to clear (`rule`, `retry`; retry None: it will not clear by itself)."""

    action: Literal["send", "wait", "hold"]
    channel: int
    backup: int
    rule: str | None
    retry: int | None
    choice: ChannelChoice


class ChannelChooser:
    """The channel of an `auto` request or `preferred` step (issue 15): the prospect's stances,
    then the learned ranking (`operators.preference`), then what the rules allow now; waiting for
    the best channel when it opens soon and is clearly better than what is allowed now."""

    def __init__(self, rules: Rules) -> None:
        policy = rules.policy
        self.rules = rules
        self.pref = policy.preference
        self.auto_order = tuple(CHANNEL_INDEX[c] for c in policy.requests.auto_order)
        self.wait_ms = self.pref.wait_hours * HOUR_MS

    def order(self, s: ProspectState) -> tuple[int, ...]:
        """Best channel first: the prospect's own words, then what their answers and choices
        taught us (a Beta posterior per channel from their segment's prior), ties by
        `auto_order`."""
        learned = preference.ranked(s.answers, s.segment, self.pref, self.auto_order)
        return preference.apply_stances(learned, s.only, s.prefer, s.avoid) or self.auto_order

    def pick(self, s: ProspectState, c: Candidate, now: int) -> Pick:
        """The first allowed channel in `order` and the next allowed as backup, unless the best
        is worth waiting for (`waits`); none allowed: hold on the one that clears soonest."""
        order = self.order(s)
        verdicts: list[ChannelVerdict] = []
        allowed: list[int] = []
        exempt = c.exempt
        for ch in order:  # stop at a channel and its backup
            rule, retry = self.rules.verdict(s, ch, now, exempt)
            verdicts.append(ChannelVerdict(ch, rule, retry))
            if rule is None:
                allowed.append(ch)
                if len(allowed) == 2:
                    break
        best = verdicts[0]
        if allowed and self.waits(s, best, allowed[0], c):
            why = self.choice(s, order, best.channel, best.rule)
            return Pick("wait", best.channel, AUTO, preference.WAIT, best.retry, why)
        if allowed:
            backup = allowed[1] if len(allowed) > 1 else AUTO
            why = self.choice(s, order, allowed[0], best.rule)  # rule None: sent on the best
            return Pick("send", allowed[0], backup, None, None, why)
        held = best  # nothing will clear by itself: block on the first channel's rule
        waiting = [v for v in verdicts if v.retry is not None]
        if waiting:
            held = min(waiting, key=_retry)  # soonest to clear; ties: preferred
        why = self.choice(s, order, held.channel, held.rule)
        return Pick("hold", held.channel, AUTO, held.rule, held.retry, why)

    def waits(self, s: ProspectState, best: ChannelVerdict, now_best: int, c: Candidate) -> bool:
        """Wait for the best channel, held now, rather than take `now_best`? Only for a hold
        that clears by itself and is the channel's own (quiet hours; its cap, for a deferrable
        touch), within `wait_hours` of the touch's first consideration (so repeated waits stay
        bounded), and when its estimate beats `now_best`'s by `wait_min_gain` (or the prospect
        said they prefer it)."""
        rule = best.rule
        if rule is None or best.retry is None or best.retry - c.first > self.wait_ms:
            return False
        own = rule == QUIET_HOURS or (c.deferrable and rule in self.rules.channel_caps)
        if not own:
            return False
        est = preference.estimates(s.answers, s.segment, self.pref)
        stated = best.channel == s.prefer
        return preference.worth_waiting(est, best.channel, now_best, self.pref, stated=stated)

    def choice(
        self, s: ProspectState, order: tuple[int, ...], ch: int, held: str | None
    ) -> ChannelChoice:
        """Why `ch` (`emit.channel_choice`); `held`: the rule holding the best channel (None if
        it is allowed now)."""
        prior = preference.ranked(None, s.segment, self.pref, self.auto_order)
        prior = preference.apply_stances(prior, s.only, s.prefer, s.avoid)
        stance = None
        if order and order[0] == ch:
            if s.only != AUTO:
                stance = "stance.only"
            elif s.prefer == ch:
                stance = "stance.prefer"
        return channel_choice(
            s.answers, s.segment, self.pref, ranking=order, prior_ranking=prior, channel=ch,
            stance=stance, held=held,
        )  # fmt: skip


def _retry(v: ChannelVerdict) -> int:
    assert v.retry is not None
    return v.retry
