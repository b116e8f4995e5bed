"""Apply one event (or one due timer) to a prospect's state and say what to do about it.

Decisions depend only on (state, event, policy): "now" is event time, a per-prospect clock that
never goes backwards, and a timer decides at its due time. Command ids derive from their cause
(prospect, causing event id, channel, reason), so a replay yields the same ids and a sender can
drop duplicates. Every candidate touch leaves exactly one decision record per consideration.
Candidates due at one instant are decided in one order, never in queue order (rule 13,
`operators.order`).
"""

from collections.abc import Callable
from sys import intern
from typing import Any, Final
from urllib.parse import urlsplit

from operators import events as ev
from operators import preference
from operators.emit import Emitter, Out, command_id
from operators.events import CHANNEL_INDEX, CHANNELS
from operators.facts import FactHandlers
from operators.order import next_index
from operators.policy import Policy
from operators.records import ChannelChoice
from operators.rules import QUIET_HOURS, ChannelChooser, Rules
from operators.sequences import ESCALATE_PHONE, ESCALATE_SMS, Sequencer
from operators.state import (
    AUTO,
    FLAG_ARBITRATE,
    FLAG_BRANCH,
    FLAG_DEFERRABLE,
    FLAG_EXEMPT,
    FLAG_HELD,
    FLAG_SEQUENCE,
    FLAG_TRANSACTIONAL,
    PRIORITY_SHIFT,
    Pending,
    ProspectState,
    add_pending,
    command_key,
    seen_before,
)
from operators.timeutil import DAY_MS, HOUR_MS, SECOND_MS, to_ms

__all__ = ["Engine", "Out", "command_id"]

REASON_REPLY: Final = "reply"
THROTTLE: Final = "throttle.trigger"
_FORM, _PRICING, _PROPOSAL = 0, 1, 2
_TRIGGER_REASONS: Final = ("trigger:form_submit", "trigger:pricing_page", "trigger:proposal_view")


class Engine(FactHandlers, Emitter):
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
        self._sms = CHANNEL_INDEX["sms"]
        orch = policy.orchestration
        self._step_defer_ms = orch.step_max_defer_hours * HOUR_MS
        self._arbitration_ms = policy.requests.arbitration_seconds * SECOND_MS
        self._open_watch_ms = orch.opened_no_click_hours * HOUR_MS
        self._click_watch_ms = orch.clicked_no_reply_hours * HOUR_MS
        self._throttle_ms = orch.trigger_throttle_hours * HOUR_MS
        self._sequence_priority = orch.sequence_priority
        self._deal_lost_ms = orch.deal_lost_cooldown_days * DAY_MS
        self._ctx_pages = lim.context_pages
        self.sequencer = Sequencer(policy, self._decide, self._record)
        self._pref = policy.preference
        self.chooser = ChannelChooser(self.rules)
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
            ev.Clicked: self._clicked_then_watch,
            ev.Replied: self._replied,
            ev.Opened: self._opened_then_watch,
            ev.CallOutcome: self._call_outcome,
            ev.Enroll: self._enroll,
            ev.Unenroll: self._unenroll,
            ev.MeetingBooked: self._meeting_booked,
            ev.DealClosed: self._deal_closed,
            ev.ChatStarted: self._chat_started,
            ev.ContentDownload: self._content_download,
            ev.Delivered: self._delivered,
        }

    # -- entry points -------------------------------------------------------------------------

    def apply(self, state: ProspectState, event: ev.Event) -> list[Out]:
        """Apply one event: first fire timers due by its time, then the event itself.

        A redelivered event (known id) has no effect at all.
        """
        out: list[Out] = []
        ts = self.admit(state, event)
        if ts is None:
            return out
        if state.pending and state.pending[0][0] <= ts:
            self.fire_due(state, ts, out)
        self.handle(state, event, ts, out)
        return out

    def admit(self, state: ProspectState, event: ev.Event) -> int | None:
        """Remember the event's id; its time in ms, or None for a redelivered (known) event."""
        if seen_before(state, event.id, self._dedupe):
            return None
        return to_ms(event.ts)

    def handle(self, state: ProspectState, event: ev.Event, ts: int, out: list[Out]) -> None:
        """The event itself, after `admit` and the timers due by its time."""
        now = ts if ts > state.clock else state.clock
        state.clock = now
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(state, event, ts, now, out)

    def fire_due(self, state: ProspectState, until: int, out: list[Out]) -> None:
        """Fire every deferred touch due at or before `until`, each deciding at its due time."""
        while state.pending and state.pending[0][0] <= until:
            self.fire_next(state, out)

    def fire_next(self, state: ProspectState, out: list[Out]) -> None:
        """Fire the soonest timer: of the items due at the earliest instant, the best-ranked one
        (rule 13, `operators.order`). An arbitration window's requests are such items: firing
        them one by one decides the window by priority, then arrival."""
        pending = state.pending
        assert pending
        item = pending.pop(self._next_index(pending))
        if not pending:
            state.pending = None  # deciding may defer again into a fresh list
        due, ch, reason, topic, cause, flags, first = item
        now = due if due > state.clock else state.clock
        state.clock = now
        if flags & FLAG_SEQUENCE:
            self.sequencer.fire(state, item, now, out)
        elif flags & FLAG_BRANCH:
            self.sequencer.follow_up(state, item, now, out)
        elif flags & FLAG_ARBITRATE:  # its window closed: first considered now; keeps priority
            plain = flags & ~FLAG_ARBITRATE
            self._decide(state, ch, reason, topic, cause, plain, now, now, out)
        else:
            self._decide(state, ch, reason, topic, cause, flags, first, now, out)

    def drop_next(self, state: ProspectState) -> list[Pending]:
        """Remove, undecided, what `fire_next` would fire: for a timer whose decision raised."""
        pending = state.pending or []
        item = pending.pop(self._next_index(pending))
        state.pending = pending or None
        return [item]

    def _next_index(self, pending: list[Pending]) -> int:
        """Which pending item fires next: the best-ranked of the soonest (`operators.order`)."""
        return next_index(pending, self._sequence_priority)

    def next_due(self, state: ProspectState) -> int | None:
        """When the next deferred touch is due (ms), for live-mode wake-ups."""
        return state.pending[0][0] if state.pending else None

    # -- triggers, replies, requests ------------------------------------------------------------

    def _page_view(
        self, s: ProspectState, e: ev.PageView, ts: int, now: int, out: list[Out]
    ) -> None:
        if self._ctx_pages:
            pages = s.pages or []
            pages.append(e.url)
            s.pages = pages[-self._ctx_pages :]
        if self._pricing_path in url_path(e.url):  # rule 12: the path, not query or fragment
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
        # The priority stays in the flags through every deferral (rule 13).
        flags = FLAG_DEFERRABLE | (FLAG_TRANSACTIONAL if e.transactional else 0)
        flags |= e.priority << PRIORITY_SHIFT
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
        flags |= FLAG_ARBITRATE
        add_pending(s, (closes, ch, reason, topic, e.id, flags, closes))

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
        # Where they answer is where they want to be reached (issue 15), unless it is to object.
        self._answered(s, ch, ts, chosen=e.sentiment != "negative")
        self.sequencer.exit_all(s, now, out)  # any real reply ends every sequence
        if e.sentiment == "negative":
            s.negative_until = max(s.negative_until, now + self.rules.negative_ms)
        else:
            self._handoff(s, e.id, now, out)

    def _enroll(self, s: ProspectState, e: ev.Enroll, ts: int, now: int, out: list[Out]) -> None:
        self.sequencer.enroll(s, e.sequence, e.id, now, out)
        self.fire_due(s, now, out)  # a first step due at once goes at once

    # -- response branching ---------------------------------------------------------------------

    def _opened_then_watch(
        self, s: ProspectState, e: ev.Opened, ts: int, now: int, out: list[Out]
    ) -> None:
        self._opened(s, e, ts, now, out)
        if e.channel == "email" and e.command and s.sequences:
            self.sequencer.watch(s, e.command, ESCALATE_SMS, ts + self._open_watch_ms)

    def _clicked_then_watch(
        self, s: ProspectState, e: ev.Clicked, ts: int, now: int, out: list[Out]
    ) -> None:
        self._clicked(s, e, ts, now, out)
        if e.channel == "email" and e.command and s.sequences:
            self.sequencer.watch(s, e.command, ESCALATE_PHONE, ts + self._click_watch_ms)

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
        template: str | None = None,
    ) -> str:
        """Send, defer or block one candidate touch, leaving its decision record; the verdict."""
        if s.open_touches is not None:
            self._settle(s, now)
        if ch == AUTO:
            return self._decide_auto(s, reason, topic, cause, flags, first, now, out, template)
        rule, retry = self.rules.verdict(s, ch, now, flags)
        if rule is None:
            self._send(s, ch, reason, topic, None, cause, now, out, template)
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
        template: str | None = None,
    ) -> str:
        """`auto`: send on the channel `ChannelChooser.pick` picks, wait for a better one
        (`preference.wait`), or hold on the one that clears soonest; each record says which
        evidence chose the channel (`ChannelChoice`)."""
        p = self.chooser.pick(s, flags, first, now)
        if p.action == "send":
            backup = CHANNELS[p.backup] if p.backup != AUTO else None
            self._send(s, p.channel, reason, topic, backup, cause, now, out, template, p.choice)
            return "sent"
        assert p.rule is not None
        if p.action == "wait":
            assert p.retry is not None
            add_pending(s, (p.retry, AUTO, reason, topic, cause, flags | FLAG_HELD, first))
            self._emit_decision(
                s, now, CHANNELS[p.channel], reason, "deferred", out,
                rule=p.rule, until=p.retry, choice=p.choice,
            )  # fmt: skip
            return "deferred"
        return self._hold(
            s, AUTO, p.channel, p.rule, p.retry, reason, topic, cause, flags, first, now, out,
            p.choice,
        )  # fmt: skip

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
        choice: ChannelChoice | None = None,
    ) -> str:
        """Defer (quiet hours always; caps and gap for deferrable touches) or block."""
        deferrable = rule == QUIET_HOURS or (
            flags & FLAG_DEFERRABLE and rule.startswith(("cap.", "gap"))
        )
        max_defer = self._step_defer_ms if flags & FLAG_SEQUENCE else self.rules.max_defer_ms
        if retry is not None and deferrable and (rule == QUIET_HOURS or retry - first <= max_defer):
            item: Pending = (retry, pending_ch, reason, topic, cause, flags | FLAG_HELD, first)
            add_pending(s, item)
            self._emit_decision(
                s, now, CHANNELS[ch], reason, "deferred", out, rule=rule, until=retry, choice=choice
            )
            return "deferred"
        self._emit_decision(s, now, CHANNELS[ch], reason, "blocked", out, rule=rule, choice=choice)
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
        template: str | None = None,
        choice: ChannelChoice | None = None,
    ) -> None:
        """Emit the command and reserve the touch at once (rule 5: counted from emission)."""
        cid = self._emit_command(
            s, now, CHANNELS[ch], reason, topic, backup, cause, out, template, choice
        )
        touches = s.touches or []
        touches.append((now, ch, command_key(cid), topic))
        s.touches = touches
        self._prune(s, now)
        tracked = preference.track_touch(s.open_touches, s.answers, ch, now, self._pref)
        self._learned(s, tracked)


def url_path(url: str) -> str:
    """The path of `url` (absolute, scheme-relative or relative), without query or fragment."""
    try:
        return urlsplit(url).path
    except ValueError:  # a malformed IPv6 host: read past it by hand, never stop the flow
        rest = url.partition("#")[0].partition("?")[0].partition("//")[2]
        return "/" + rest.partition("/")[2]
