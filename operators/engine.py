"""Apply one event (or one due timer) to a prospect's state and say what to do about it.

Decisions depend only on (state, event, policy): "now" is event time, a per-prospect clock that
never goes backwards, and a timer decides at its due time. Command ids derive from their cause
(prospect, causing event id, channel, reason), so a replay yields the same ids and a sender can
drop duplicates. Every candidate touch leaves exactly one decision record per consideration.
"""

import bisect
import hashlib
from collections.abc import Callable
from sys import intern
from typing import Any, Final

from operators import events as ev
from operators import fatigue, preference
from operators.events import CHANNEL_INDEX, CHANNELS
from operators.policy import Policy
from operators.records import (
    ACTION_FOR_CHANNEL,
    Command,
    Context,
    Decision,
    LastReply,
    OutChannel,
    RecentTouch,
)
from operators.rules import QUIET_HOURS, Rules
from operators.sequences import Sequencer
from operators.state import (
    AUTO,
    FLAG_ARBITRATE,
    FLAG_DEFERRABLE,
    FLAG_EXEMPT,
    FLAG_HELD,
    FLAG_SEQUENCE,
    FLAG_TRANSACTIONAL,
    PRIORITY_SHIFT,
    Pending,
    ProspectState,
    command_key,
    seen_before,
)
from operators.timeutil import DAY_MS, HOUR_MS, SECOND_MS, format_ts, to_ms

# An output: (time it is about, per-prospect sequence number, record).
Out = tuple[int, int, Command | Decision]

REASON_REPLY: Final = "reply"
THROTTLE: Final = "throttle.trigger"
_FORM, _PRICING, _PROPOSAL = 0, 1, 2
_TRIGGER_REASONS: Final = ("trigger:form_submit", "trigger:pricing_page", "trigger:proposal_view")


def command_id(prospect: str, cause: str, channel: str, reason: str) -> str:
    """Deterministic id: the same cause always yields the same command id."""
    key = "\x1f".join((prospect, cause, channel, reason)).encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class Engine:
    """The contact rules applied to prospect state. Stateless itself; safe to share."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rules = Rules(policy)
        lim = policy.limits
        self._dedupe = lim.dedupe_ids
        self._ctx_touches = lim.context_touches
        self._ctx_clicks = lim.context_clicks
        self._reply_chars = lim.reply_text_chars
        kw = policy.keywords
        self._stop = frozenset(w.strip().upper() for w in kw.stop)
        self._start = frozenset(w.strip().upper() for w in kw.start)
        self._resume = frozenset(w.strip().upper() for w in kw.resume_after_stop)
        trig = policy.triggers
        self._form = tuple(CHANNEL_INDEX[c] for c in trig.form_submit)
        self._pricing = tuple(CHANNEL_INDEX[c] for c in trig.pricing_page)
        self._proposal = tuple(CHANNEL_INDEX[c] for c in trig.proposal_view)
        self._pricing_path = trig.pricing_path
        self._auto_order = tuple(CHANNEL_INDEX[c] for c in policy.requests.auto_order)
        self._sms = CHANNEL_INDEX["sms"]
        orch = policy.orchestration
        self._step_defer_ms = orch.step_max_defer_hours * HOUR_MS
        self._arbitration_ms = policy.requests.arbitration_seconds * SECOND_MS
        self._throttle_ms = orch.trigger_throttle_hours * HOUR_MS
        self._deal_lost_ms = orch.deal_lost_cooldown_days * DAY_MS
        self._ctx_pages = lim.context_pages
        self.sequencer = Sequencer(policy, self._decide, self._record)
        self._pref = policy.preference
        self._fatigue = policy.fatigue
        self._handlers: dict[type, Callable[[ProspectState, Any, int, int, list[Out]], None]] = {
            ev.Profile: self._profile,
            ev.Consent: self._consent,
            ev.OptOut: self._opt_out,
            ev.DoNotContact: self._do_not_contact,
            ev.Bounce: self._bounce,
            ev.Complaint: self._complaint,
            ev.Preference: self._preference,
            ev.PageView: self._page_view,
            ev.FormSubmit: self._form_submit,
            ev.ProposalView: self._proposal_view,
            ev.TouchRequest: self._touch_request,
            ev.TouchSent: self._touch_sent,
            ev.TouchFailed: self._touch_failed,
            ev.Clicked: self._clicked,
            ev.Replied: self._replied,
            ev.Opened: self._opened,
            ev.CallOutcome: self._call_outcome,
            ev.Enroll: self._enroll,
            ev.Unenroll: self._unenroll,
            ev.MeetingBooked: self._meeting_booked,
            ev.DealClosed: self._deal_closed,
        }

    # -- entry points -------------------------------------------------------------------------

    def apply(self, state: ProspectState, event: ev.Event) -> list[Out]:
        """Apply one event: first fire timers due by its time, then the event itself.

        A redelivered event (known id) has no effect at all.
        """
        out: list[Out] = []
        if seen_before(state, event.id, self._dedupe):
            return out
        ts = to_ms(event.ts)
        if state.pending and state.pending[0][0] <= ts:
            self.fire_due(state, ts, out)
        now = ts if ts > state.clock else state.clock
        state.clock = now
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(state, event, ts, now, out)
        return out

    def fire_due(self, state: ProspectState, until: int, out: list[Out]) -> None:
        """Fire every deferred touch due at or before `until`, each deciding at its due time."""
        while state.pending and state.pending[0][0] <= until:
            if state.pending[0][5] & FLAG_ARBITRATE:
                self._arbitrate(state, out)
                continue
            due, ch, reason, topic, cause, flags, first = state.pending.pop(0)
            if not state.pending:
                state.pending = None  # deciding may defer again into a fresh list
            now = due if due > state.clock else state.clock
            state.clock = now
            if flags & FLAG_SEQUENCE:
                item = (due, ch, reason, topic, cause, flags, first)
                self.sequencer.fire(state, item, now, out)
            else:
                self._decide(state, ch, reason, topic, cause, flags, first, now, out)

    def _arbitrate(self, state: ProspectState, out: list[Out]) -> None:
        """An arbitration window closed: decide its requests by priority, then arrival."""
        pending = state.pending or []
        closes = pending[0][0]
        batch = [p for p in pending if p[0] == closes and p[5] & FLAG_ARBITRATE]
        rest = [p for p in pending if not (p[0] == closes and p[5] & FLAG_ARBITRATE)]
        state.pending = rest or None
        now = closes if closes > state.clock else state.clock
        state.clock = now
        batch.sort(key=_priority, reverse=True)  # stable: arrival order within a priority
        for _due, ch, reason, topic, cause, flags, _first in batch:
            plain = flags & ~(FLAG_ARBITRATE | 0xF << PRIORITY_SHIFT)
            self._decide(state, ch, reason, topic, cause, plain, now, now, out)

    def next_due(self, state: ProspectState) -> int | None:
        """When the next deferred touch is due (ms), for live-mode wake-ups."""
        return state.pending[0][0] if state.pending else None

    # -- facts about the prospect ---------------------------------------------------------------

    def _profile(self, s: ProspectState, e: ev.Profile, ts: int, now: int, out: list[Out]) -> None:
        # Interned: the same few zones, regions and segments recur across millions of prospects.
        if e.timezone is not None:
            s.timezone = intern(e.timezone)
        if e.phone is not None:
            s.phone = e.phone
        if e.region is not None:
            s.region = intern(e.region.upper())
        if e.segment is not None:
            s.segment = intern(e.segment)

    def _consent(self, s: ProspectState, e: ev.Consent, ts: int, now: int, out: list[Out]) -> None:
        bit = 1 << CHANNEL_INDEX[e.channel]
        s.consent = s.consent | bit if e.granted else s.consent & ~bit

    def _opt_out(self, s: ProspectState, e: ev.OptOut, ts: int, now: int, out: list[Out]) -> None:
        s.fatigue = fatigue.on_opt_out(s.fatigue, now, self._fatigue)
        if e.channel == "all":
            s.opted_out_all = True
            self.sequencer.exit_all(s, now, out)
        else:
            s.opted_out |= 1 << CHANNEL_INDEX[e.channel]

    def _do_not_contact(
        self, s: ProspectState, e: ev.DoNotContact, ts: int, now: int, out: list[Out]
    ) -> None:
        s.do_not_contact = True
        self.sequencer.exit_all(s, now, out)

    def _bounce(self, s: ProspectState, e: ev.Bounce, ts: int, now: int, out: list[Out]) -> None:
        if e.hard:
            s.bounced |= 1 << CHANNEL_INDEX[e.channel]

    def _complaint(
        self, s: ProspectState, e: ev.Complaint, ts: int, now: int, out: list[Out]
    ) -> None:
        s.complained |= 1 << CHANNEL_INDEX[e.channel]
        s.complaint_until = max(s.complaint_until, now + self.rules.complaint_ms)
        s.fatigue = fatigue.on_complaint(s.fatigue, now, self._fatigue)
        self.sequencer.exit_all(s, now, out)

    def _preference(
        self, s: ProspectState, e: ev.Preference, ts: int, now: int, out: list[Out]
    ) -> None:
        ch = CHANNEL_INDEX[e.channel]
        if e.stance == "avoid":
            s.avoid |= 1 << ch
            s.only = AUTO if s.only == ch else s.only
            s.prefer = AUTO if s.prefer == ch else s.prefer
        else:
            s.avoid &= ~(1 << ch)
            if e.stance == "only":
                s.only = ch
            else:
                s.prefer = ch
                s.only = AUTO if s.only not in (AUTO, ch) else s.only

    def _clicked(self, s: ProspectState, e: ev.Clicked, ts: int, now: int, out: list[Out]) -> None:
        s.engaged_at = max(s.engaged_at, ts)
        s.responded_at = max(s.responded_at, ts)
        self._answered(s, CHANNEL_INDEX[e.channel], ts)
        if e.url is not None and self._ctx_clicks:
            clicks = s.clicks or []
            clicks.append(e.url)
            s.clicks = clicks[-self._ctx_clicks :]

    # -- reservations (rule 5) ------------------------------------------------------------------

    def _touch_sent(
        self, s: ProspectState, e: ev.TouchSent, ts: int, now: int, out: list[Out]
    ) -> None:
        key = command_key(e.command) if e.command else 0
        touches = s.touches or []
        if key and any(t[2] == key for t in touches):
            return  # confirms our own reservation: already counted
        bisect.insort(touches, (ts, CHANNEL_INDEX[e.channel], key, e.topic), key=_touch_ts)
        s.touches = touches
        self._prune(s, now)

    def _touch_failed(
        self, s: ProspectState, e: ev.TouchFailed, ts: int, now: int, out: list[Out]
    ) -> None:
        key = command_key(e.command)
        if s.touches:
            s.touches = [t for t in s.touches if t[2] != key] or None

    def _prune(self, s: ProspectState, now: int) -> None:
        touches = s.touches
        if touches and touches[0][0] <= now - self.rules.horizon_ms:
            since = now - self.rules.horizon_ms
            s.touches = [t for t in touches if t[0] > since] or None

    # -- triggers, replies, requests ------------------------------------------------------------

    def _page_view(
        self, s: ProspectState, e: ev.PageView, ts: int, now: int, out: list[Out]
    ) -> None:
        if self._ctx_pages:
            pages = s.pages or []
            pages.append(e.url)
            s.pages = pages[-self._ctx_pages :]
        if self._pricing_path in e.url:
            self._trigger(s, _PRICING, self._pricing, "pricing", e.id, now, out)

    def _form_submit(
        self, s: ProspectState, e: ev.FormSubmit, ts: int, now: int, out: list[Out]
    ) -> None:
        self._trigger(s, _FORM, self._form, e.form, e.id, now, out)

    def _proposal_view(
        self, s: ProspectState, e: ev.ProposalView, ts: int, now: int, out: list[Out]
    ) -> None:
        self._trigger(s, _PROPOSAL, self._proposal, e.document, e.id, now, out)

    def _trigger(
        self,
        s: ProspectState,
        kind: int,
        channels: tuple[int, ...],
        topic: str | None,
        cause: str,
        now: int,
        out: list[Out],
    ) -> None:
        """Answer the prospect's own action, at most once per trigger kind per throttle window."""
        reason = _TRIGGER_REASONS[kind]
        fired = s.triggered or (0, 0, 0)
        if fired[kind] and now - fired[kind] < self._throttle_ms:
            for ch in channels:
                self._emit_decision(s, now, CHANNELS[ch], reason, "blocked", out, rule=THROTTLE)
            return
        verdicts = [
            self._decide(s, ch, reason, topic, cause, FLAG_EXEMPT, now, now, out) for ch in channels
        ]
        if "sent" in verdicts or "deferred" in verdicts:
            s.triggered = (*fired[:kind], now, *fired[kind + 1 :])  # type: ignore[assignment]

    def _touch_request(
        self, s: ProspectState, e: ev.TouchRequest, ts: int, now: int, out: list[Out]
    ) -> None:
        ch = AUTO if e.channel == "auto" else CHANNEL_INDEX[e.channel]
        flags = FLAG_DEFERRABLE | (FLAG_TRANSACTIONAL if e.transactional else 0)
        reason = intern(f"request:{e.campaign}")
        topic = intern(e.topic) if e.topic is not None else None
        if e.transactional or not self._arbitration_ms:
            self._decide(s, ch, reason, topic, e.id, flags, now, now, out)
            return
        # Wait for the arbitration window (the one already open, or a new one from now).
        closes = next(
            (p[0] for p in s.pending or () if p[5] & FLAG_ARBITRATE and p[0] >= now),
            now + self._arbitration_ms,
        )
        flags |= FLAG_ARBITRATE | e.priority << PRIORITY_SHIFT
        pending = s.pending or []
        bisect.insort(pending, (closes, ch, reason, topic, e.id, flags, closes), key=_pending_due)
        s.pending = pending

    def _replied(self, s: ProspectState, e: ev.Replied, ts: int, now: int, out: list[Out]) -> None:
        ch = CHANNEL_INDEX[e.channel]
        text = e.text[: self._reply_chars] if e.text is not None else None
        s.last_reply = (ch, ts, e.sentiment, text)
        if ch == self._sms and e.text is not None:
            word = e.text.strip().upper()
            sms_bit = 1 << self._sms
            if word in self._stop:
                s.opted_out |= sms_bit
                self.sequencer.exit_all(s, now, out)
                return
            if word in self._start or (word in self._resume and s.opted_out & sms_bit):
                s.opted_out &= ~sms_bit
                return
        if e.sentiment == "out_of_office":
            self.sequencer.pause(s, now, out)
            return
        s.engaged_at = max(s.engaged_at, ts)
        s.responded_at = max(s.responded_at, ts)
        self._answered(s, ch, ts)
        self.sequencer.exit_all(s, now, out)  # any real reply ends every sequence
        if e.sentiment == "negative":
            s.negative_until = max(s.negative_until, now + self.rules.negative_ms)
        else:
            self._handoff(s, e.id, now, out)

    def _opened(self, s: ProspectState, e: ev.Opened, ts: int, now: int, out: list[Out]) -> None:
        s.engaged_at = max(s.engaged_at, ts)
        self._answered(s, CHANNEL_INDEX[e.channel], ts)

    def _call_outcome(
        self, s: ProspectState, e: ev.CallOutcome, ts: int, now: int, out: list[Out]
    ) -> None:
        if e.outcome == "answered":
            s.engaged_at = max(s.engaged_at, ts)
            s.responded_at = max(s.responded_at, ts)
            self._answered(s, CHANNEL_INDEX["phone"], ts)

    def _enroll(self, s: ProspectState, e: ev.Enroll, ts: int, now: int, out: list[Out]) -> None:
        self.sequencer.enroll(s, e.sequence, e.id, now, out)
        self.fire_due(s, now, out)  # a first step due at once goes at once

    def _unenroll(
        self, s: ProspectState, e: ev.Unenroll, ts: int, now: int, out: list[Out]
    ) -> None:
        self.sequencer.unenroll(s, e.sequence, now, out)

    def _meeting_booked(
        self, s: ProspectState, e: ev.MeetingBooked, ts: int, now: int, out: list[Out]
    ) -> None:
        s.booked_at = max(s.booked_at, ts)
        self.sequencer.exit_all(s, now, out)

    def _deal_closed(
        self, s: ProspectState, e: ev.DealClosed, ts: int, now: int, out: list[Out]
    ) -> None:
        self.sequencer.exit_all(s, now, out)
        if e.won:
            s.customer = True
        else:
            s.deal_lost_until = max(s.deal_lost_until, now + self._deal_lost_ms)

    def _handoff(self, s: ProspectState, cause: str, now: int, out: list[Out]) -> None:
        """Hand the conversation to a person: not a touch, so no cap; only a full stop blocks it."""
        rule = None
        if s.do_not_contact:
            rule = "suppressed.do_not_contact"
        elif s.opted_out_all:
            rule = "suppressed.opt_out.all"
        if rule is not None:
            self._emit_decision(s, now, "rep", REASON_REPLY, "blocked", out, rule=rule)
            return
        topic = s.touches[-1][3] if s.touches else None
        self._emit_command(s, now, "rep", REASON_REPLY, topic, None, cause, out)

    # -- deciding one candidate -----------------------------------------------------------------

    def _decide(
        self,
        s: ProspectState,
        ch: int,
        reason: str,
        topic: str | None,
        cause: str,
        flags: int,
        first: int,
        now: int,
        out: list[Out],
    ) -> str:
        """Send, defer or block one candidate touch, leaving its decision record; the verdict."""
        if s.open_touches is not None:
            self._settle(s, now)
        if ch == AUTO:
            return self._decide_auto(s, reason, topic, cause, flags, first, now, out)
        rule, retry = self.rules.verdict(s, ch, now, flags)
        if rule is None:
            self._send(s, ch, reason, topic, None, cause, now, out)
            return "sent"
        return self._hold(s, ch, ch, rule, retry, reason, topic, cause, flags, first, now, out)

    def _decide_auto(
        self,
        s: ProspectState,
        reason: str,
        topic: str | None,
        cause: str,
        flags: int,
        first: int,
        now: int,
        out: list[Out],
    ) -> str:
        """`auto`: the first allowed channel in preference order, the next allowed as backup."""
        verdicts: list[tuple[int, str | None, int | None]] = []
        allowed: list[int] = []
        for ch in self._channel_order(s):  # stop at a channel and its backup
            rule, retry = self.rules.verdict(s, ch, now, flags)
            verdicts.append((ch, rule, retry))
            if rule is None:
                allowed.append(ch)
                if len(allowed) == 2:
                    break
        if allowed:
            backup = CHANNELS[allowed[1]] if len(allowed) > 1 else None
            self._send(s, allowed[0], reason, topic, backup, cause, now, out)
            return "sent"
        waiting = [(retry, ch, rule) for ch, rule, retry in verdicts if retry is not None]
        held = verdicts[0]  # nothing will clear by itself: block on the first channel's rule
        if waiting:
            retry, ch, rule = min(waiting)  # the soonest channel to clear: wait for it
            held = (ch, rule, retry)
        held_on, held_by, held_until = held
        assert held_by is not None  # no channel was allowed, so each has a rule
        return self._hold(
            s, AUTO, held_on, held_by, held_until, reason, topic, cause, flags, first, now, out
        )

    def _channel_order(self, s: ProspectState) -> tuple[int, ...]:
        """Best channel first: the prospect's own words, then what their answers taught us
        (a Beta posterior per channel from their segment's prior), ties by `auto_order`."""
        learned = preference.ranked(s.answers, s.segment, self._pref, self._auto_order)
        order = preference.apply_stances(learned, s.only, s.prefer, s.avoid)
        return order or self._auto_order

    # -- learning from answers ------------------------------------------------------------------

    def _answered(self, s: ProspectState, ch: int, ts: int) -> None:
        """An open, click, reply or answered call: credit the open touch, relieve fatigue."""
        tracked = preference.track_response(s.open_touches, s.answers, ch, ts, self._pref)
        self._learned(s, tracked)
        s.fatigue = fatigue.on_engagement(s.fatigue, ts, self._fatigue)

    def _settle(self, s: ProspectState, now: int) -> None:
        """Touches whose answer window closed unanswered become misses (and raise fatigue)."""
        self._learned(s, preference.settle(s.open_touches, s.answers, now, self._pref))

    def _learned(self, s: ProspectState, tracked: preference.Attribution) -> None:
        s.open_touches, s.answers = tracked.track, tracked.stats
        for ch, at, declining in tracked.misses:
            s.fatigue = fatigue.on_unanswered_touch(
                s.fatigue, ch, at, self._fatigue, declining=declining
            )

    def _hold(
        self,
        s: ProspectState,
        pending_ch: int,
        ch: int,
        rule: str,
        retry: int | None,
        reason: str,
        topic: str | None,
        cause: str,
        flags: int,
        first: int,
        now: int,
        out: list[Out],
    ) -> str:
        """Defer (quiet hours always; caps and gap for deferrable touches) or block."""
        deferrable = rule == QUIET_HOURS or (
            flags & FLAG_DEFERRABLE and rule.startswith(("cap.", "gap"))
        )
        max_defer = self._step_defer_ms if flags & FLAG_SEQUENCE else self.rules.max_defer_ms
        if retry is not None and deferrable and (rule == QUIET_HOURS or retry - first <= max_defer):
            item: Pending = (retry, pending_ch, reason, topic, cause, flags | FLAG_HELD, first)
            pending = s.pending or []
            bisect.insort(pending, item, key=_pending_due)
            s.pending = pending
            self._emit_decision(
                s, now, CHANNELS[ch], reason, "deferred", out, rule=rule, until=retry
            )
            return "deferred"
        self._emit_decision(s, now, CHANNELS[ch], reason, "blocked", out, rule=rule)
        return "blocked"

    def _send(
        self,
        s: ProspectState,
        ch: int,
        reason: str,
        topic: str | None,
        backup: str | None,
        cause: str,
        now: int,
        out: list[Out],
    ) -> None:
        """Emit the command and reserve the touch at once (rule 5: counted from emission)."""
        cid = self._emit_command(s, now, CHANNELS[ch], reason, topic, backup, cause, out)
        touches = s.touches or []
        touches.append((now, ch, command_key(cid), topic))
        s.touches = touches
        self._prune(s, now)
        tracked = preference.track_touch(s.open_touches, s.answers, ch, now, self._pref)
        self._learned(s, tracked)

    # -- records ----------------------------------------------------------------------------------

    def _emit_command(
        self,
        s: ProspectState,
        now: int,
        channel: OutChannel,
        reason: str,
        topic: str | None,
        backup: str | None,
        cause: str,
        out: list[Out],
    ) -> str:
        cid = command_id(s.prospect, cause, channel, reason)
        ts = format_ts(now)
        command = Command(
            id=cid,
            prospect=s.prospect,
            ts=ts,
            channel=channel,
            action=ACTION_FOR_CHANNEL[channel],
            reason=reason,
            topic=topic,
            backup=backup,
            context=self._context(s),
        )
        s.seq += 1
        out.append((now, s.seq, command))
        self._emit_decision(s, now, channel, reason, "sent", out, command=cid)
        return cid

    def _emit_decision(
        self,
        s: ProspectState,
        now: int,
        channel: OutChannel,
        reason: str,
        verdict: str,
        out: list[Out],
        *,
        rule: str | None = None,
        until: int | None = None,
        command: str | None = None,
    ) -> None:
        s.seq += 1
        record = Decision(
            prospect=s.prospect,
            ts=format_ts(now),
            channel=channel,
            reason=reason,
            verdict=verdict,  # type: ignore[arg-type]
            rule=rule,
            until=format_ts(until) if until is not None else None,
            command=command,
        )
        out.append((now, s.seq, record))

    def _record(
        self,
        s: ProspectState,
        now: int,
        channel: str,
        reason: str,
        verdict: str,
        out: list[Out],
        rule: str,
        until: int | None = None,
    ) -> None:
        self._emit_decision(s, now, channel, reason, verdict, out, rule=rule, until=until)  # type: ignore[arg-type]

    def _context(self, s: ProspectState) -> Context:
        n = self._ctx_touches
        recent = s.touches[-n:] if s.touches and n else ()
        reply = s.last_reply
        return Context(
            touches=[RecentTouch(CHANNELS[t[1]], format_ts(t[0]), t[3]) for t in recent],
            clicks=list(s.clicks or ()),
            pages=list(s.pages or ()),
            last_reply=(
                LastReply(CHANNELS[reply[0]], format_ts(reply[1]), reply[2], reply[3])
                if reply is not None
                else None
            ),
        )


def _touch_ts(t: tuple[int, int, int, str | None]) -> int:
    return t[0]


def _pending_due(p: Pending) -> int:
    return p[0]


def _priority(p: Pending) -> int:
    return p[5] >> PRIORITY_SHIFT & 0xF
