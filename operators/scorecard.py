"""The scorecard's counts (CONTRACT.md section 8), kept incrementally from what the engine did.

One accumulator for replay and live: per prospect, in the prospect's order, it is fed the outputs
of timers that fired, then each admitted event (not a redelivery, not a rejected one), then that
event's own outputs (`operators.scorecard_feed` does the feeding). From those alone it keeps:

1. The counts: every global number of the scorecard, as named integer fields (`Fields`) that
   sum by name, so per-batch (live) or per-worker partial counts add up to the whole (`counts`
   arranges them for the view, which alone computes rates: `operators.scorecard_view`).
2. `ProspectFacts`: the few facts per prospect that distinct counts and hindsight need, small
   and MessagePack-encodable to be checkpointed with the prospect's state: touches per channel,
   a ledger of recent touches (command key, channel, time, what callbacks said of it), the
   first counted reply, the active sequences, recent conversions and their credit, and the
   last `LAST_DECISIONS` decision records (compact `Recent`s, for `touchflow inspect`).

Counts follow hindsight, as the contract's definitions read: a `touch_failed` that releases a
command, or a `touch_sent` that reports it on its backup channel, changes the counts, the
prospect's touches before its first reply, and the channel a past conversion was credited to.
Distinct-prospect counts (touched, replied, multi- or single-channel) are kept as the difference
each prospect's change makes (`scorecard_touches.shape`), so no pass over all prospects is
ever needed. Touches themselves are kept by a `TouchBook` (`operators.scorecard_touches`).

The ledger is bounded (`ledger_days` before the prospect's latest touch or conversion, at most
`ledger_max` entries): a callback naming a command older than that is not matched, and counts
nothing.

Live mode re-encodes a prospect's facts only after a batch that changed them (`changed`): an
event whose handler changes nothing returns False. Only events and outputs the tally acts on move
the facts' clock (the latest touch or conversion), so a page view changes nothing at all.
"""

from collections.abc import Callable, Iterable
from typing import Any, Final

from operators import events as ev
from operators.emit import Out
from operators.events import CHANNEL_INDEX
from operators.policy import Policy
from operators.records import Command, Decision
from operators.scorecard_facts import (
    ANSWERED,
    ANSWERED_AT,
    BLOCKED,
    COMPLETED,
    CUSTOMER,
    DECISION_CHANNELS,
    DEFERRED,
    DELIVERED,
    DELIVERED_AT,
    ENROLLED,
    EXITED_BY_REPLY,
    HELD_BLOCKED,
    HELD_DEFERRED,
    LAST_DECISIONS,
    LEDGER_DAYS,
    LEDGER_MAX,
    N_CHANNELS,
    OPENED,
    OPENED_AT,
    OPT_OUTS_AT,
    RELEASED,
    REPLIED,
    REPLIES_AT,
    REQUESTED,
    SENT,
    SMS_OUT,
    STOPPED,
    VERDICTS,
    Contact,
    Counts,
    FieldNames,
    Fields,
    ProspectFacts,
    Recent,
    Touch,
    count,
    counts_from,
    touch_key,
)
from operators.scorecard_touches import TouchBook, find, shape

__all__ = ["Counts", "Fields", "ProspectFacts", "Tally"]

_NOT_COMPLETION: Final = frozenset({"sequence.ended", "sequence.customer"})
_VERDICT_INDEX: Final = {"sent": SENT, "deferred": DEFERRED, "blocked": BLOCKED}
_VERDICT: Final = {v: i for i, v in enumerate(VERDICTS)}
_DECISION_CHANNEL: Final = {c: i for i, c in enumerate(DECISION_CHANNELS)}


class Tally:
    """The accumulator: counts into `fields` and each prospect's `ProspectFacts`. Not
    thread-safe; one per worker (live) or per run (replay)."""

    def __init__(
        self, policy: Policy, *, ledger_days: int = LEDGER_DAYS, ledger_max: int = LEDGER_MAX
    ) -> None:
        kw = policy.keywords
        self._stop = frozenset(w.strip().upper() for w in kw.stop)
        self._start = frozenset(w.strip().upper() for w in kw.start)
        self._resume = frozenset(w.strip().upper() for w in kw.resume_after_stop)
        self.steps = {name: len(d.steps) for name, d in policy.sequences.items()}
        self.names = FieldNames()
        self.book = TouchBook(self.names, ledger_days=ledger_days, ledger_max=ledger_max)
        self.changed = False  # did facts change since the caller last reset it (live mode)?
        self._sms = CHANNEL_INDEX["sms"]
        self._handlers: dict[type, Callable[[ProspectFacts, Any, int], bool | None]] = {
            ev.TouchSent: self._touch_sent,
            ev.TouchFailed: self._touch_failed,
            ev.Delivered: self._delivered,
            ev.Opened: self._opened,
            ev.CallOutcome: self._call_outcome,
            ev.Replied: self._replied,
            ev.OptOut: self._opt_out,
            ev.DoNotContact: self._do_not_contact,
            ev.Complaint: self._complaint,
            ev.MeetingBooked: self._meeting_booked,
            ev.DealClosed: self._deal_closed,
            ev.Enroll: self._enroll,
            ev.Unenroll: self._unenroll,
            ev.TouchRequest: self._touch_request,
            ev.Profile: self._profile,
        }

    # -- entry points -----------------------------------------------------------------------

    @property
    def fields(self) -> Fields:
        """What was counted since the start (replay) or the last `take` (live)."""
        return self.book.fields

    @property
    def counts(self) -> Counts:
        """`fields` as `Counts`, every sequence of the policy present."""
        return counts_from(self.book.fields.items(), self.steps)

    def take(self) -> Fields | None:
        """What was counted since the last `take` (None: nothing), counting afresh from now on.
        Live mode takes a batch's counts with its effects to the checkpoint that writes its
        state (`connectors.redis_sink`), where a running total could not be split by prospect;
        a batch that counted nothing costs no allocation."""
        fields = self.book.fields
        if not fields:
            return None
        self.book.fields = {}
        return fields

    def event(self, f: ProspectFacts, event: ev.Event, ts: int) -> None:
        """An admitted event at its time `ts` (ms), after the timers it fired, before its own
        outputs."""
        handler = self._handlers.get(type(event))
        if handler is not None and handler(f, event, ts) is not False:
            self.changed = True

    def outputs(self, f: ProspectFacts, outs: Iterable[Out]) -> None:
        """Commands and decision records, in the order the engine emitted them (each one
        changes the facts: a decision is kept among the last ones, a command as a touch)."""
        for ts, _seq, record in outs:
            self.changed = True  # (in the loop: `outs` may be any iterable, empty or not)
            if type(record) is Command:
                if record.channel != "rep":  # a handoff is not a touch
                    self._command(f, record, ts)
            else:
                self._decision(f, record, ts)  # type: ignore[arg-type]

    # -- outputs ------------------------------------------------------------------------------

    def _command(self, f: ProspectFacts, command: Command, ts: int) -> None:
        key = touch_key(command.id)
        for t in f.ledger or ():
            if t.key == key:
                return  # the same command again (its cause redelivered past the dedupe window)
        self.book.add(f, Touch(key, CHANNEL_INDEX[command.channel], ts))

    def _decision(self, f: ProspectFacts, d: Decision, ts: int) -> None:
        c = self.book.fields
        verdict = d.verdict
        rule = d.rule
        recent = Recent(
            ts, _DECISION_CHANNEL[d.channel], d.reason, _VERDICT[verdict], rule, d.until
        )
        if f.decisions is None:
            f.decisions = [recent]
        else:
            f.decisions.append(recent)
            if len(f.decisions) > LAST_DECISIONS:
                del f.decisions[0]
        if rule is not None and verdict != "sent":
            field = self.names.rule(rule)[HELD_DEFERRED if verdict == "deferred" else HELD_BLOCKED]
            c[field] = c.get(field, 0) + 1
        reason = d.reason
        if reason.startswith("request:"):
            field = self.names.campaign(reason[8:])[_VERDICT_INDEX[verdict]]
            c[field] = c.get(field, 0) + 1
        elif reason.startswith("sequence:") and verdict != "deferred":
            if rule is not None and rule in _NOT_COMPLETION:
                return
            head, _, step = reason.rpartition(":")
            name = head[9:]
            if self.steps.get(name) == int(step) and f.sequences and name in f.sequences:
                count(c, self.names.sequence(name)[COMPLETED], 1)
                _discard(f, name)

    # -- events (each returns False when it left the facts as they were) -----------------------

    def _touch_sent(self, f: ProspectFacts, e: ev.TouchSent, ts: int) -> bool:
        ch = CHANNEL_INDEX[e.channel]
        if not e.command:  # a manual touch (a rep's email, another tool's text)
            self.book.add(f, Touch(0, ch, ts))
            return True
        entry = find(f, touch_key(e.command))
        if entry is None or entry.channel == ch:
            return False
        self.book.move(f, entry, ch)  # the sender fell back to the backup channel
        return True

    def _touch_failed(self, f: ProspectFacts, e: ev.TouchFailed, ts: int) -> bool:
        entry = find(f, touch_key(e.command))
        if entry is None or entry.marks & RELEASED:
            return False
        self.book.release(f, entry)
        return True

    def _delivered(self, f: ProspectFacts, e: ev.Delivered, ts: int) -> bool:
        return self.book.mark(f, e.command, DELIVERED, DELIVERED_AT)

    def _opened(self, f: ProspectFacts, e: ev.Opened, ts: int) -> bool:
        return self.book.mark(f, e.command, OPENED, OPENED_AT)

    def _call_outcome(self, f: ProspectFacts, e: ev.CallOutcome, ts: int) -> bool:
        if e.outcome != "answered":
            return False
        marked = self.book.mark(f, e.command, ANSWERED, ANSWERED_AT)
        return _end_sequences(f) or marked  # a conversation happened: sequences end

    def _replied(self, f: ProspectFacts, e: ev.Replied, ts: int) -> bool:
        ch = CHANNEL_INDEX[e.channel]
        if ch == self._sms and e.text is not None:
            word = e.text.strip().upper()
            if word in self._stop:
                f.flags |= SMS_OUT
                self._opted_out(f, ch)
                f.sequences = None
                return True
            if word in self._start or (word in self._resume and f.flags & SMS_OUT):
                f.flags &= ~SMS_OUT
                return True
        if e.sentiment == "out_of_office":
            return False
        c = self.book.fields
        c[REPLIES_AT[ch]] = c.get(REPLIES_AT[ch], 0) + 1
        field = self.names.day(ts)[N_CHANNELS + ch]
        c[field] = c.get(field, 0) + 1
        for name in f.sequences or ():
            count(c, self.names.sequence(name)[EXITED_BY_REPLY], 1)
        ended = _end_sequences(f)
        if f.flags & REPLIED and ts >= f.first_reply_ts:
            return ended
        before = shape(f)
        if f.flags & REPLIED:  # an earlier reply, reported late: fewer touches came before it
            f.to_reply -= sum(
                1
                for t in f.ledger or ()
                if not t.marks & RELEASED and ts <= t.ts < f.first_reply_ts
            )
        else:
            f.to_reply = f.total_touches - sum(
                1 for t in f.ledger or () if not t.marks & RELEASED and t.ts >= ts
            )
        f.flags |= REPLIED
        f.first_reply_ts = ts
        f.first_reply_channel = ch
        self.book.reshaped(before, shape(f))
        return True

    def _opt_out(self, f: ProspectFacts, e: ev.OptOut, ts: int) -> bool:
        if e.channel == "all":
            return self._stopped(f)
        ch = CHANNEL_INDEX[e.channel]
        if ch == self._sms:
            f.flags |= SMS_OUT
        self._opted_out(f, ch)
        return True

    def _do_not_contact(self, f: ProspectFacts, e: ev.DoNotContact, ts: int) -> bool:
        return self._stopped(f)

    def _complaint(self, f: ProspectFacts, e: ev.Complaint, ts: int) -> bool:
        count(self.book.fields, "complaints", 1)
        return _end_sequences(f)

    def _meeting_booked(self, f: ProspectFacts, e: ev.MeetingBooked, ts: int) -> bool:
        f.sequences = None
        self.book.conversion(f, ts)
        return True

    def _deal_closed(self, f: ProspectFacts, e: ev.DealClosed, ts: int) -> bool:
        if not e.won:
            return _end_sequences(f)
        f.sequences = None
        f.flags |= CUSTOMER
        self.book.conversion(f, ts)
        return True

    def _enroll(self, f: ProspectFacts, e: ev.Enroll, ts: int) -> bool:
        name = e.sequence
        if name not in self.steps or f.flags & CUSTOMER:
            return False  # unknown (rejected upstream) or refused (`sequence.customer`)
        if f.sequences and name in f.sequences:
            return False  # already running: the engine changes nothing
        f.sequences = [*(f.sequences or ()), name]
        count(self.book.fields, self.names.sequence(name)[ENROLLED], 1)
        return True

    def _unenroll(self, f: ProspectFacts, e: ev.Unenroll, ts: int) -> bool:
        if e.sequence is None:
            return _end_sequences(f)
        if f.sequences and e.sequence in f.sequences:
            _discard(f, e.sequence)
            return True
        return False

    def _touch_request(self, f: ProspectFacts, e: ev.TouchRequest, ts: int) -> bool:
        field = self.names.campaign(e.campaign)[REQUESTED]
        c = self.book.fields
        c[field] = c.get(field, 0) + 1
        return False  # counted only; the decision about it is an output

    def _profile(self, f: ProspectFacts, e: ev.Profile, ts: int) -> bool:
        if e.email is None and e.lead_source is None and e.account is None:
            return False
        old = f.contact or Contact()
        f.contact = Contact(
            e.email if e.email is not None else old.email,
            e.lead_source if e.lead_source is not None else old.lead_source,
            e.account if e.account is not None else old.account,
        )
        return True

    # -- opt-outs ---------------------------------------------------------------------------------

    def _opted_out(self, f: ProspectFacts, ch: int) -> None:
        bit = 1 << ch
        if not f.opted & bit:
            f.opted |= bit
            count(self.book.fields, OPT_OUTS_AT[ch], 1)

    def _stopped(self, f: ProspectFacts) -> bool:
        ended = _end_sequences(f)
        if f.flags & STOPPED:
            return ended
        f.flags |= STOPPED
        count(self.book.fields, "stopped", 1)
        return True


def _end_sequences(f: ProspectFacts) -> bool:
    """End every active sequence; False if none was (the facts unchanged)."""
    if f.sequences is None:
        return False
    f.sequences = None
    return True


def _discard(f: ProspectFacts, name: str) -> None:
    kept = [n for n in f.sequences or () if n != name]
    f.sequences = kept or None
