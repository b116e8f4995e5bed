"""Sequences: multi-step, multi-channel plans run by per-prospect timers.

A step is a pending touch like any deferred one (so it survives restarts in the prospect's
state and fires in event time in replay); when due it re-enters `Sequencer.fire`, which checks
the enrollment is still active, checks the step's condition, lets the engine decide the touch,
and schedules the next step. Policy for a step a rule stops: quiet hours defer it; a cap or the
gap defers it up to `step_max_defer_hours`, else it is skipped; any other rule skips it. Every
outcome leaves a decision record, and the sequence then moves on. A sequence that runs to its
end starts `cooldown.sequence` for sequence and campaign touches. An out-of-office reply moves
every pending step and response follow-up by the length of the pause (rule 14, `pause`).
"""

from collections.abc import Callable
from typing import Any, Final

from operators.emit import command_id
from operators.events import CHANNEL_INDEX, CHANNELS
from operators.policy import Policy, SequenceDef, Step
from operators.state import (
    AUTO,
    FLAG_ANSWERED,
    FLAG_BRANCH,
    FLAG_DEFERRABLE,
    FLAG_HELD,
    FLAG_PAUSED,
    FLAG_SEQUENCE,
    Enrollment,
    Pending,
    ProspectState,
    add_pending,
    command_key,
    pending_due,
)
from operators.timeutil import DAY_MS, HOUR_MS

# The engine's decision for one candidate: returns "sent", "deferred" or "blocked".
Decide = Callable[
    [ProspectState, int, str, str | None, str, int, int, int, list[Any], str | None], str
]
NEW_SUBJECT: Final = "new_subject"
ESCALATE_SMS: Final = "escalation:sms"  # an opened sequence email got no click
ESCALATE_PHONE: Final = "escalation:phone"  # a clicked sequence email got no reply
# Emits a decision record: (state, now, channel, reason, verdict, out, rule, until).
Record = Callable[[ProspectState, int, str, str, str, list[Any], str, int | None], None]

STEP_FLAGS: Final = FLAG_SEQUENCE | FLAG_DEFERRABLE
_FOLLOW_UP: Final = FLAG_SEQUENCE | FLAG_BRANCH  # what an out-of-office reply pauses
ENDED: Final = "sequence.ended"
PAUSED: Final = "paused.out_of_office"


def step_reason(name: str, index: int) -> str:
    return f"sequence:{name}:{index + 1}"


class Sequencer:
    """Runs the policy's sequences on a prospect's state; owns no state itself."""

    def __init__(self, policy: Policy, decide: Decide, record: Record) -> None:
        self.defs: dict[str, SequenceDef] = dict(policy.sequences)
        self._decide = decide
        self._record = record
        orch = policy.orchestration
        self._pause_ms = orch.out_of_office_pause_days * DAY_MS
        self._cooldown_ms = policy.cooldowns.sequence_days * DAY_MS
        self._open_watch_ms = orch.opened_no_click_hours * HOUR_MS
        self._reasons = {
            name: tuple(step_reason(name, i) for i in range(len(d.steps)))
            for name, d in self.defs.items()
        }

    # -- enrollment ---------------------------------------------------------------------------

    def enroll(self, s: ProspectState, name: str, cause: str, now: int, out: list[Any]) -> None:
        definition = self.defs.get(name)
        if definition is None:
            return  # the decoder rejects unknown names to the dead-letter output
        if s.customer:
            first = definition.steps[0]
            channel = first.channel if first.channel != "preferred" else "email"
            reason = self._reasons[name][0]
            self._record(s, now, channel, reason, "blocked", out, "sequence.customer", None)
            return
        if any(e[0] == name for e in s.sequences or ()):
            return  # already running: enrolling twice changes nothing
        enrollment: Enrollment = (name, 0, now, 0, cause)
        s.sequences = [*(s.sequences or ()), enrollment]
        self._schedule(s, enrollment, now)

    def unenroll(self, s: ProspectState, name: str | None, now: int, out: list[Any]) -> None:
        """Stop one sequence, or all of them."""
        keep = [e for e in s.sequences or () if name is not None and e[0] != name]
        s.sequences = keep or None
        if name is None:
            s.shifted = None
        else:
            _forget_shift(s, name)
        self._drop_steps(s, name, now, out)

    def exit_all(self, s: ProspectState, now: int, out: list[Any]) -> None:
        """A reply, a booking, a closed deal or a full stop ends every sequence."""
        if s.sequences:
            self.unenroll(s, None, now, out)

    def pause(self, s: ProspectState, now: int, out: list[Any]) -> None:
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
        end = now + self._pause_ms
        delta = end - max(s.paused_until, now)
        if delta <= 0:
            return
        s.paused_until = end
        if s.sequences:
            shifted = s.shifted or {}
            for name, *_ in s.sequences:
                shifted[name] = shifted.get(name, 0) + delta
            s.shifted = shifted
        if not s.pending:
            return
        moved: list[Pending] = []
        for item in s.pending:
            due, ch, reason, topic, cause, flags, first = item
            if flags & _FOLLOW_UP:
                if flags & FLAG_BRANCH and self._answered(s, reason, flags, first):
                    flags |= FLAG_ANSWERED  # answered before the pause: `first` moves below
                if flags & FLAG_HELD:
                    channel = _channel_name(ch)
                    self._record(s, now, channel, reason, "deferred", out, PAUSED, due + delta)
                flags |= FLAG_PAUSED
                item = (due + delta, ch, reason, topic, cause, flags, first + delta)
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
            flags = item[5]
            if flags & FLAG_PAUSED and item[2] == ESCALATE_SMS and not flags & FLAG_ANSWERED:
                s.pending[i] = (*item[:5], flags | FLAG_ANSWERED, item[6])

    # -- steps ----------------------------------------------------------------------------------

    def fire(self, s: ProspectState, item: Pending, now: int, out: list[Any]) -> None:
        """A step came due: check it still applies, decide it, move the sequence on."""
        _due_ms, ch, reason, topic, cause, flags, first = item
        _, name, number = reason.split(":")
        index = int(number) - 1
        enrollment = next((e for e in s.sequences or () if e[0] == name), None)
        definition = self.defs.get(name)
        if enrollment is None or definition is None or enrollment[1] != index:
            return  # stale: the sequence ended or moved on
        step = definition.steps[index]
        if not self._condition_holds(s, enrollment, step):
            channel = step.channel if step.channel != "preferred" else "email"
            rule = f"sequence.when.{step.when}"
            self._record(s, now, channel, reason, "blocked", out, rule, None)
            self._advance(s, enrollment, now, sent=False)
            return
        last_sent = enrollment[3]
        unopened = step.channel == "email" and last_sent and s.engaged_at <= last_sent
        template = NEW_SUBJECT if unopened else None  # no open since our last touch: re-subject
        verdict = self._decide(s, ch, reason, topic, cause, flags, first, now, out, template)
        if verdict != "deferred":
            self._advance(s, enrollment, now, sent=verdict == "sent")

    # -- response branching ---------------------------------------------------------------------

    def watch(self, s: ProspectState, command: str, reason: str, due: int) -> None:
        """Schedule a follow-up on the topic of the touch `command` names, once per command."""
        key = command_key(command)
        touch = next((t for t in s.touches or () if t[2] == key), None)
        if touch is None or any(p[2] == reason and p[4] == command for p in s.pending or ()):
            return
        ch = _SMS if reason == ESCALATE_SMS else _PHONE
        sent = command_key(command_id(s.prospect, command, CHANNELS[ch], reason))
        if any(t[2] == sent for t in s.touches or ()):
            return  # this follow-up already went out: one per touch, one command id
        item: Pending = (due, ch, reason, touch[3], command, FLAG_BRANCH | FLAG_DEFERRABLE, due)
        add_pending(s, item)

    def follow_up(self, s: ProspectState, item: Pending, now: int, out: list[Any]) -> None:
        """A follow-up came due: it goes only while a sequence runs (a reply ends them all) and,
        for the sms after an open, only if no click or reply came since the open."""
        _due_ms, ch, reason, topic, cause, flags, first = item
        answered = self._answered(s, reason, flags, first)
        if not s.sequences or answered:
            if flags & FLAG_HELD:  # it was deferred: close it with a record
                rule = ENDED if not s.sequences else "escalation.answered"
                self._record(s, now, CHANNELS[ch], reason, "blocked", out, rule, None)
            return
        self._decide(s, ch, reason, topic, cause, flags, first, now, out, None)

    def _answered(self, s: ProspectState, reason: str, flags: int, first: int) -> bool:
        """Whether the open an sms follow-up watches got a click or reply: one since the open
        (`first` less the watch, for a follow-up never paused), or marked while paused."""
        if reason != ESCALATE_SMS:
            return False
        return bool(flags & FLAG_ANSWERED) or s.responded_at > first - self._open_watch_ms

    def _condition_holds(self, s: ProspectState, e: Enrollment, step: Step) -> bool:
        started, last_sent = e[2], e[3]
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
        name, index, started, last_sent, cause = e
        rest = [x for x in s.sequences or () if x[0] != name]
        if index + 1 >= len(self.defs[name].steps):
            s.sequences = rest or None
            s.sequence_until = max(s.sequence_until, now + self._cooldown_ms)
            _forget_shift(s, name)
            return
        moved: Enrollment = (name, index + 1, started, now if sent else last_sent, cause)
        s.sequences = [*rest, moved]
        self._schedule(s, moved, now)

    def _schedule(self, s: ProspectState, e: Enrollment, now: int) -> None:
        name, index, started, _last, cause = e
        step = self.defs[name].steps[index]
        # Counted from the enrollment as moved by out-of-office pauses (rule 14), so the steps
        # keep their spacing; conditions still count from the real `started`.
        base = started + (s.shifted or {}).get(name, 0) if step.since == "start" else now
        due = max(now, base + step.after_hours * HOUR_MS)
        ch = AUTO if step.channel == "preferred" else CHANNEL_INDEX[step.channel]
        item: Pending = (due, ch, self._reasons[name][index], step.topic, cause, STEP_FLAGS, due)
        add_pending(s, item)

    def _drop_steps(self, s: ProspectState, name: str | None, now: int, out: list[Any]) -> None:
        """Remove the ended sequences' steps (and, when all end, every response follow-up);
        a deferred one is closed with a decision record."""
        if not s.pending:
            return
        prefix = "sequence:" if name is None else f"sequence:{name}:"
        keep: list[Pending] = []
        for item in s.pending:
            _due_ms, ch, reason, _topic, _cause, flags, _first = item
            ends = (flags & FLAG_SEQUENCE and reason.startswith(prefix)) or (
                name is None and flags & FLAG_BRANCH
            )
            if not ends:
                keep.append(item)
            elif flags & FLAG_HELD:
                self._record(s, now, _channel_name(ch), reason, "blocked", out, ENDED, None)
        s.pending = keep or None


def _forget_shift(s: ProspectState, name: str) -> None:
    """The sequence ended: its pause shift goes with it (a new enrollment starts unmoved)."""
    if s.shifted and name in s.shifted:
        del s.shifted[name]
        if not s.shifted:
            s.shifted = None


def _channel_name(ch: int) -> str:
    """The channel a record names for a pending step (`preferred` steps: the first choice)."""
    return CHANNELS[ch] if ch != AUTO else CHANNELS[0]


_SMS: Final = CHANNEL_INDEX["sms"]
_PHONE: Final = CHANNEL_INDEX["phone"]
