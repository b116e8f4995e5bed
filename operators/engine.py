"""Apply one event (or one due timer) to a prospect's state and say what to do about it.

Decisions depend only on (state, event, policy): "now" is event time, a per-prospect clock that
never goes backwards, and a timer decides at its due time. Command ids derive from their cause
(prospect, causing event id, channel, reason), so a replay yields the same ids and a sender can
drop duplicates. Every candidate touch leaves exactly one decision record per consideration.
Candidates due at one instant are decided in one order, never in queue order (rule 13,
`operators.order`).

The engine is a composition: the policy compiled once (`Compiled`), a `Decider` that owns the
rules and the records, a `Sequencer` given that decider, and a table of event handlers, plain
functions in `operators.facts` and `operators.actions`. The engine itself only admits events,
runs the handlers and fires the timers.
"""

from typing import Final

from operators import actions, facts
from operators import events as ev
from operators.compiled import Compiled, compile_policy
from operators.decider import Decider
from operators.emit import Out, command_id
from operators.order import next_index
from operators.parts import Handler, Parts
from operators.policy import Policy
from operators.rules import Rules
from operators.sequences import Sequencer
from operators.state import ProspectState, seen_before
from operators.state_records import ARBITRATING, Kind, Pending, waiting, with_props
from operators.timeutil import to_ms

__all__ = ["Engine", "Out", "command_id"]

_HANDLERS: Final[dict[type, Handler]] = {
    ev.Profile: facts.profile,
    ev.Consent: facts.consent,
    ev.OptOut: facts.opt_out,
    ev.DoNotContact: facts.do_not_contact,
    ev.Bounce: facts.bounce,
    ev.Complaint: facts.complaint,
    ev.Preference: facts.preference,
    ev.PageView: actions.page_view,
    ev.FormSubmit: actions.form_submit,
    ev.ProposalView: actions.proposal_view,
    ev.TouchRequest: actions.touch_request,
    ev.TouchSent: facts.touch_sent,
    ev.TouchFailed: facts.touch_failed,
    ev.Clicked: actions.clicked,
    ev.Replied: actions.replied,
    ev.Opened: actions.opened,
    ev.CallOutcome: facts.call_outcome,
    ev.Unenroll: facts.unenroll,
    ev.MeetingBooked: facts.meeting_booked,
    ev.DealClosed: facts.deal_closed,
    ev.ChatStarted: facts.chat_started,
    ev.ContentDownload: facts.content_download,
    ev.Delivered: facts.delivered,
}


class Engine:
    """The contact rules applied to prospect state. Stateless itself; safe to share.

    `decider` builds the `Decider` (a test may pass a subclass that breaks one rule, to show
    the reference checker catches it).
    """

    def __init__(self, policy: Policy, *, decider: type[Decider] = Decider) -> None:
        self.policy = policy
        self.compiled: Compiled = compile_policy(policy)
        self.decider = decider(self.compiled)
        self.sequencer = Sequencer(self.compiled, self.decider)
        self.parts = Parts(self.compiled, self.decider, self.sequencer)
        self._handlers: dict[type, Handler] = {**_HANDLERS, ev.Enroll: self._enroll}

    @property
    def rules(self) -> Rules:
        """The compiled rules (for tools asking "would this touch go now?")."""
        return self.compiled.rules

    # -- entry points -------------------------------------------------------------------------

    def apply(self, state: ProspectState, event: ev.Event) -> list[Out]:
        """Apply one event: first fire timers due by its time, then the event itself.

        A redelivered event (known id) has no effect at all.
        """
        out: list[Out] = []
        ts = self.admit(state, event)
        if ts is None:
            return out
        if state.pending and state.pending[0].due <= ts:
            self.fire_due(state, ts, out)
        self.handle(state, event, ts, out)
        return out

    def admit(self, state: ProspectState, event: ev.Event) -> int | None:
        """Remember the event's id; its time in ms, or None for a redelivered (known) event."""
        if seen_before(state, event.id, self.compiled.dedupe):
            return None
        return to_ms(event.ts)

    def handle(self, state: ProspectState, event: ev.Event, ts: int, out: list[Out]) -> None:
        """The event itself, after `admit` and the timers due by its time."""
        if ts > state.clock:
            state.clock = ts
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self.parts, state, event, ts, out)

    def fire_due(self, state: ProspectState, until: int, out: list[Out]) -> None:
        """Fire every deferred touch due at or before `until`, each deciding at its due time."""
        while state.pending and state.pending[0].due <= until:
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
        now = item.due if item.due > state.clock else state.clock
        state.clock = now
        kind = item.kind
        if kind is Kind.STEP:
            self.sequencer.fire(state, item, now, out)
        elif kind is Kind.FOLLOW_UP:
            self.sequencer.follow_up(state, item, now, out)
        elif int(item.props) & ARBITRATING:  # its window closed: first considered now
            plain = waiting(item, item.due, with_props(item.props, drop=ARBITRATING), first=now)
            self.decider.decide(state, plain, now, out)
        else:
            self.decider.decide(state, item, now, out)

    def drop_next(self, state: ProspectState) -> list[Pending]:
        """Remove, undecided, what `fire_next` would fire: for a timer whose decision raised."""
        pending = state.pending or []
        item = pending.pop(self._next_index(pending))
        state.pending = pending or None
        return [item]

    def _next_index(self, pending: list[Pending]) -> int:
        """Which pending item fires next: the best-ranked of the soonest (`operators.order`)."""
        return next_index(pending, self.compiled.sequence_priority)

    def next_due(self, state: ProspectState) -> int | None:
        """When the next deferred touch is due (ms), for live-mode wake-ups."""
        return state.pending[0].due if state.pending else None

    def _enroll(self, p: Parts, s: ProspectState, e: ev.Enroll, ts: int, out: list[Out]) -> None:
        actions.enroll(p, s, e, ts, out)
        self.fire_due(s, s.clock, out)  # a first step due at once goes at once
