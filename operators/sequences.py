"""Sequences: multi-step, multi-channel plans run by per-prospect timers.

A step is a pending touch like any deferred one (so it survives restarts in the prospect's
state and fires in event time in replay); when due it re-enters `Sequencer.fire`, which checks
the enrollment is still active, checks the step's condition, lets the `Decider` decide the
touch, and schedules the next step. Policy for a step a rule stops: quiet hours defer it; a cap
or the gap defers it up to `step_max_defer_hours`, else it is skipped; any other rule skips it.
Every outcome leaves a decision record, and the sequence then moves on. A sequence that runs to its
end starts `cooldown.sequence` for sequence and campaign touches. An out-of-office reply moves
every pending step and response follow-up by the length of the pause (rule 14, `pause`).
"""

from typing import Final

import msgspec

from operators.compiled import Compiled
from operators.decider import Decider
from operators.emit import Out, command_id
from operators.events import CHANNEL_INDEX, CHANNELS, Channel
from operators.policy import Step
from operators.state import ProspectState, add_pending, command_key, pending_due
from operators.state_records import (
    ANSWERED,
    AUTO,
    HELD,
    Enrollment,
    Kind,
    Pending,
    Props,
    props_of,
    waiting,
    with_props,
)
from operators.state_records import PAUSED as PAUSED_BIT
from operators.timeutil import HOUR_MS

NEW_SUBJECT: Final = "new_subject"
ESCALATE_SMS: Final = "escalation:sms"  # an opened sequence email got no click
ESCALATE_PHONE: Final = "escalation:phone"  # a clicked sequence email got no reply
ENDED: Final = "sequence.ended"
PAUSED: Final = "paused.out_of_office"
_FOLLOW_UPS: Final = (Kind.STEP, Kind.FOLLOW_UP)  # what an out-of-office reply pauses


class Sequencer:
    """Runs the policy's sequences on a prospect's state; owns no state itself.

    Its steps and follow-ups are decided by the engine's `Decider`, which it is given: the
    sequencer says what is due and whether it still applies, the decider what the rules allow.
    """

    def __init__(self, k: Compiled, decider: Decider) -> None:
        self.k = k
        self.defs = k.sequences
        self.decider = decider
        self.records = decider.records

    # -- enrollment ---------------------------------------------------------------------------

    def enroll(self, s: ProspectState, name: str, cause: str, now: int, out: list[Out]) -> None:
        """Start sequence `name` (once: enrolling twice changes nothing); a customer is not."""
        definition = self.defs.get(name)
        if definition is None:
            return  # the decoder rejects unknown names to the dead-letter output
        if s.customer:
            first = definition.steps[0]
            channel = first.channel if first.channel != "preferred" else "email"
            reason = self.k.step_reasons[name][0]
            self.records.decision(s, now, out, channel, reason, "blocked", rule="sequence.customer")
            return
        if any(e.sequence == name for e in s.sequences or ()):
            return  # already running: enrolling twice changes nothing
        enrollment = Enrollment(name, 0, now, 0, cause)
        s.sequences = [*(s.sequences or ()), enrollment]
        self._schedule(s, enrollment, now)

    def unenroll(self, s: ProspectState, name: str | None, now: int, out: list[Out]) -> None:
        """Stop one sequence, or all of them."""
        keep = [e for e in s.sequences or () if name is not None and e.sequence != name]
        s.sequences = keep or None
        if name is None:
            s.shifted = None
        else:
            _forget_shift(s, name)
        self._drop_steps(s, name, now, out)

    def exit_all(self, s: ProspectState, now: int, out: list[Out]) -> None:
        """A reply, a booking, a closed deal or a full stop ends every sequence."""
        if s.sequences:
            self.unenroll(s, None, now, out)

    def pause(self, s: ProspectState, now: int, out: list[Out]) -> None:
        """Out of office (rule 14): every automated follow-up moves by the length of the pause.

        Sequence steps and response follow-ups alike: each pending one moves, due time and
        `first` (its deferral budget and its place in an instant's order) together, and each
        active sequence remembers the move (`shifted`), so steps counted from the enrollment
        (`since = "start"`) keep their spacing after the pause instead of all coming due at its
        end. Requests and triggers are not follow-ups: they do not move. A second reply inside
        the pause extends it to `out_of_office_pause_days` from that reply (it moves things by
        the extension only, never twice). A deferred item gets a new decision record (deferred
        to its new time), so its earlier `until` is never silently broken.
        """
        end = now + self.k.pause_ms
        delta = end - max(s.paused_until, now)
        if delta <= 0:
            return
        s.paused_until = end
        if s.sequences:
            shifted = s.shifted or {}
            for e in s.sequences:
                shifted[e.sequence] = shifted.get(e.sequence, 0) + delta
            s.shifted = shifted
        if not s.pending:
            return
        moved: list[Pending] = []
        for item in s.pending:
            if item.kind in _FOLLOW_UPS:
                props = int(item.props) | PAUSED_BIT
                if item.kind is Kind.FOLLOW_UP and self._answered(s, item):
                    props |= ANSWERED  # answered before the pause: `first` moves below
                if props & HELD:
                    self.records.decision(
                        s, now, out, _channel_name(item.channel), item.reason, "deferred",
                        rule=PAUSED, until=item.due + delta,
                    )  # fmt: skip
                item = waiting(item, item.due + delta, props_of(props), first=item.first + delta)
            moved.append(item)
        moved.sort(key=pending_due)  # stable: items due at one instant keep their order
        s.pending = moved

    def responded(self, s: ProspectState) -> None:
        """A click or a chat: a paused sms follow-up of an opened email is answered.

        A follow-up not paused tells this from its `first` at its due time (a response after the
        open); a paused one's `first` moved with the pause, so it is marked now.
        """
        if not s.pending:
            return
        for i, item in enumerate(s.pending):
            props = int(item.props)
            if props & PAUSED_BIT and item.reason == ESCALATE_SMS and not props & ANSWERED:
                s.pending[i] = msgspec.structs.replace(item, props=with_props(item.props, ANSWERED))

    # -- steps ----------------------------------------------------------------------------------

    def fire(self, s: ProspectState, item: Pending, now: int, out: list[Out]) -> None:
        """A step came due: check it still applies, decide it, move the sequence on."""
        name, index = item.sequence, item.step
        enrollment = next((e for e in s.sequences or () if e.sequence == name), None)
        definition = self.defs.get(name) if name is not None else None
        if enrollment is None or definition is None or enrollment.step != index:
            return  # stale: the sequence ended or moved on
        step = definition.steps[index]
        if not self._condition_holds(s, enrollment, step):
            channel: Channel = step.channel if step.channel != "preferred" else "email"
            rule = f"sequence.when.{step.when}"
            self.records.decision(s, now, out, channel, item.reason, "blocked", rule=rule)
            self._advance(s, enrollment, now, sent=False)
            return
        last_sent = enrollment.last_sent
        unopened = step.channel == "email" and last_sent and s.engaged_at <= last_sent
        template = NEW_SUBJECT if unopened else None  # no open since our last touch: re-subject
        verdict = self.decider.decide(s, item, now, out, template)
        if verdict != "deferred":
            self._advance(s, enrollment, now, sent=verdict == "sent")

    # -- response branching ---------------------------------------------------------------------

    def watch(self, s: ProspectState, command: str, reason: str, at: int) -> None:
        """Schedule a follow-up on the topic of the touch `command` names, once per command:
        the sms (`ESCALATE_SMS`) an open at `at` gets if no click follows within the open watch,
        the call (`ESCALATE_PHONE`) a click gets if no reply follows within the click watch."""
        sms = reason == ESCALATE_SMS
        due = at + (self.k.open_watch_ms if sms else self.k.click_watch_ms)
        key = command_key(command)
        touch = next((t for t in s.touches or () if t.command == key), None)
        if touch is None or any(p.reason == reason and p.cause == command for p in s.pending or ()):
            return
        ch = _SMS if sms else _PHONE
        sent = command_key(command_id(s.prospect, command, CHANNELS[ch], reason))
        if any(t.command == sent for t in s.touches or ()):
            return  # this follow-up already went out: one per touch, one command id
        item = Pending(
            channel=ch, kind=Kind.FOLLOW_UP, reason=reason, topic=touch.topic, cause=command,
            first=due, priority=0, props=Props.NONE, sequence=None, step=0, due=due,
        )  # fmt: skip
        add_pending(s, item)

    def follow_up(self, s: ProspectState, item: Pending, now: int, out: list[Out]) -> None:
        """A follow-up came due: it goes only while a sequence runs (a reply ends them all) and,
        for the sms after an open, only if no click or reply came since the open."""
        if not s.sequences or self._answered(s, item):
            if int(item.props) & HELD:  # it was deferred: close it with a record
                rule = ENDED if not s.sequences else "escalation.answered"
                channel = CHANNELS[item.channel]
                self.records.decision(s, now, out, channel, item.reason, "blocked", rule=rule)
            return
        self.decider.decide(s, item, now, out)

    def _answered(self, s: ProspectState, item: Pending) -> bool:
        """Whether the open an sms follow-up watches got a click or reply: one since the open,
        or marked while paused.

        The open's time is the follow-up's `first` less the open watch, as `watch` scheduled it;
        only a pause moves `first`, and it marks an answer before the pause (`responded` one
        during it) instead.
        """
        if item.reason != ESCALATE_SMS:
            return False
        opened = item.first - self.k.open_watch_ms
        return bool(int(item.props) & ANSWERED) or s.responded_at > opened

    def _condition_holds(self, s: ProspectState, e: Enrollment, step: Step) -> bool:
        started, last_sent = e.started, e.last_sent
        since = started if step.since == "start" else (last_sent or started)
        engaged = s.engaged_at > since
        when = step.when
        if when == "always":
            return True
        if when == "no_response":
            return s.responded_at <= since
        if when == "unresponsive":
            return s.responded_at <= started
        if when == "engaged":
            return engaged
        if when == "engaged_no_booking":
            return engaged and s.booked_at <= started
        return not engaged  # no_engagement

    def _advance(self, s: ProspectState, e: Enrollment, now: int, *, sent: bool) -> None:
        name = e.sequence
        rest = [x for x in s.sequences or () if x.sequence != name]
        if e.step + 1 >= len(self.defs[name].steps):
            s.sequences = rest or None
            s.sequence_until = max(s.sequence_until, now + self.k.sequence_cooldown_ms)
            _forget_shift(s, name)
            return
        moved = Enrollment(name, e.step + 1, e.started, now if sent else e.last_sent, e.cause)
        s.sequences = [*rest, moved]
        self._schedule(s, moved, now)

    def _schedule(self, s: ProspectState, e: Enrollment, now: int) -> None:
        name, index = e.sequence, e.step
        step = self.defs[name].steps[index]
        # Counted from the enrollment as moved by out-of-office pauses (rule 14), so the steps
        # keep their spacing; conditions still count from the real `started`.
        base = e.started + (s.shifted or {}).get(name, 0) if step.since == "start" else now
        due = max(now, base + step.after_hours * HOUR_MS)
        ch = AUTO if step.channel == "preferred" else CHANNEL_INDEX[step.channel]
        reason = self.k.step_reasons[name][index]
        item = Pending(
            channel=ch, kind=Kind.STEP, reason=reason, topic=step.topic, cause=e.cause, first=due,
            priority=0, props=Props.NONE, sequence=name, step=index, due=due,
        )  # fmt: skip
        add_pending(s, item)

    def _drop_steps(self, s: ProspectState, name: str | None, now: int, out: list[Out]) -> None:
        """Remove the ended sequences' steps (and, when all end, every response follow-up);
        a deferred one is closed with a decision record."""
        if not s.pending:
            return
        keep: list[Pending] = []
        for item in s.pending:
            kind = item.kind
            ends = (kind is Kind.STEP and (name is None or item.sequence == name)) or (
                name is None and kind is Kind.FOLLOW_UP
            )
            if not ends:
                keep.append(item)
            elif int(item.props) & HELD:
                channel = _channel_name(item.channel)
                self.records.decision(s, now, out, channel, item.reason, "blocked", rule=ENDED)
        s.pending = keep or None


def _forget_shift(s: ProspectState, name: str) -> None:
    """The sequence ended: its pause shift goes with it (a new enrollment starts unmoved)."""
    if s.shifted and name in s.shifted:
        del s.shifted[name]
        if not s.shifted:
            s.shifted = None


def _channel_name(ch: int) -> Channel:
    """The channel a record names for a pending step (`preferred` steps: the first choice)."""
    return CHANNELS[ch] if ch != AUTO else CHANNELS[0]


_SMS: Final = CHANNEL_INDEX["sms"]
_PHONE: Final = CHANNEL_INDEX["phone"]
