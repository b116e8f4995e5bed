"""The scorecard's counts (CONTRACT.md section 8), kept incrementally from what the engine did.

One accumulator for replay and live: per prospect, in the prospect's order, it is fed the outputs
of timers that fired, then each admitted event (not a redelivery, not a rejected one), then that
event's own outputs (`operators.scorecard_feed` does the feeding). From those alone it keeps:

1. `Counts`: every global number of the scorecard, as integers that merge by addition, so
   per-worker partial counts sum to the whole (rates are computed only when the scorecard is
   shown, `operators.scorecard_view`).
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

The ledger is bounded (`ledger_days` after the prospect's latest time, at most `ledger_max`
entries): a callback naming a command older than that is not matched, and counts nothing.
"""

from collections.abc import Iterable
from typing import Final

from operators import events as ev
from operators.emit import Out
from operators.events import CHANNEL_INDEX
from operators.policy import Policy
from operators.records import Command, Decision
from operators.scorecard_facts import (
    ANSWERED,
    BLOCKED,
    COMPLETED,
    CUSTOMER,
    DECISION_CHANNELS,
    DEFERRED,
    DELIVERED,
    ENROLLED,
    EXITED_BY_REPLY,
    HELD_BLOCKED,
    HELD_DEFERRED,
    LAST_DECISIONS,
    LEDGER_DAYS,
    LEDGER_MAX,
    N_CHANNELS,
    OPENED,
    RELEASED,
    REPLIED,
    REQUESTED,
    SENT,
    SMS_OUT,
    STOPPED,
    VERDICTS,
    Contact,
    Counts,
    ProspectFacts,
    Recent,
    Touch,
    touch_key,
)
from operators.scorecard_touches import TouchBook, find, shape

__all__ = ["Counts", "ProspectFacts", "Tally"]

_NOT_COMPLETION: Final = frozenset({"sequence.ended", "sequence.customer"})
_VERDICT_INDEX: Final = {"sent": SENT, "deferred": DEFERRED, "blocked": BLOCKED}
_VERDICT: Final = {v: i for i, v in enumerate(VERDICTS)}
_DECISION_CHANNEL: Final = {c: i for i, c in enumerate(DECISION_CHANNELS)}


class Tally:
    """The accumulator: feeds `Counts` and each prospect's `ProspectFacts`. Not thread-safe;
    one per worker, merged with `Counts.merge`."""

    def __init__(
        self,
        policy: Policy,
        *,
        counts: Counts | None = None,
        ledger_days: int = LEDGER_DAYS,
        ledger_max: int = LEDGER_MAX,
    ) -> None:
        self.counts = counts if counts is not None else Counts()
        kw = policy.keywords
        self._stop = frozenset(w.strip().upper() for w in kw.stop)
        self._start = frozenset(w.strip().upper() for w in kw.start)
        self._resume = frozenset(w.strip().upper() for w in kw.resume_after_stop)
        self.steps = {name: len(d.steps) for name, d in policy.sequences.items()}
        for name in self.steps:
            self.counts.sequences.setdefault(name, [0, 0, 0])
        self.book = TouchBook(self.counts, ledger_days=ledger_days, ledger_max=ledger_max)
        self._sms = CHANNEL_INDEX["sms"]
        self._handlers = {
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

    def into(self, counts: Counts) -> None:
        """Count into `counts` from now on. Live mode gives each batch a fresh `Counts`: the
        batch's delta travels with the prospect's state to the checkpoint that writes both
        (`connectors.redis_sink`), where a running total could not be split by prospect."""
        self.counts = counts
        self.book.counts = counts

    def counts_on(self, event: object) -> bool:
        """Whether `event` (of itself, outputs aside) may change a count: its type has a
        handler. Every other event changes only the facts' clock."""
        return type(event) in self._handlers

    def event(self, f: ProspectFacts, event: ev.Event, ts: int) -> None:
        """An admitted event at its time `ts` (ms), after the timers it fired, before its own
        outputs."""
        if ts > f.clock:
            f.clock = ts
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(f, event, ts)  # type: ignore[operator]

    def outputs(self, f: ProspectFacts, outs: Iterable[Out]) -> None:
        """Commands and decision records, in the order the engine emitted them."""
        for ts, _seq, record in outs:
            if type(record) is Command:
                if record.channel != "rep":  # a handoff is not a touch
                    self._command(f, record, ts)
            else:
                self._decision(f, record, ts)  # type: ignore[arg-type]

    # -- outputs ------------------------------------------------------------------------------

    def _command(self, f: ProspectFacts, command: Command, ts: int) -> None:
        if ts > f.clock:
            f.clock = ts
        key = touch_key(command.id)
        for t in f.ledger or ():
            if t.key == key:
                return  # the same command again (its cause redelivered past the dedupe window)
        self.book.add(f, Touch(key, CHANNEL_INDEX[command.channel], ts))

    def _decision(self, f: ProspectFacts, d: Decision, ts: int) -> None:
        c = self.counts
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
            row = c.held_back.get(rule)
            if row is None:
                row = c.held_back[rule] = [0, 0]
            row[HELD_DEFERRED if verdict == "deferred" else HELD_BLOCKED] += 1
        reason = d.reason
        if reason.startswith("request:"):
            campaign = reason[8:]
            row = c.campaigns.get(campaign)
            if row is None:
                row = c.campaigns[campaign] = [0, 0, 0, 0]
            row[_VERDICT_INDEX[verdict]] += 1
        elif reason.startswith("sequence:") and verdict != "deferred":
            if rule is not None and rule in _NOT_COMPLETION:
                return
            head, _, step = reason.rpartition(":")
            name = head[9:]
            if self.steps.get(name) == int(step) and f.sequences and name in f.sequences:
                self._sequence_row(name)[COMPLETED] += 1
                _discard(f, name)

    # -- events -------------------------------------------------------------------------------

    def _touch_sent(self, f: ProspectFacts, e: ev.TouchSent, ts: int) -> None:
        ch = CHANNEL_INDEX[e.channel]
        if not e.command:  # a manual touch (a rep's email, another tool's text)
            self.book.add(f, Touch(0, ch, ts))
            return
        entry = find(f, touch_key(e.command))
        if entry is not None and entry.channel != ch:
            self.book.move(f, entry, ch)  # the sender fell back to the backup channel

    def _touch_failed(self, f: ProspectFacts, e: ev.TouchFailed, ts: int) -> None:
        entry = find(f, touch_key(e.command))
        if entry is not None and not entry.marks & RELEASED:
            self.book.release(f, entry)

    def _delivered(self, f: ProspectFacts, e: ev.Delivered, ts: int) -> None:
        if e.command:
            self.book.mark(f, e.command, DELIVERED, self.counts.delivered)

    def _opened(self, f: ProspectFacts, e: ev.Opened, ts: int) -> None:
        if e.command:
            self.book.mark(f, e.command, OPENED, self.counts.opened)

    def _call_outcome(self, f: ProspectFacts, e: ev.CallOutcome, ts: int) -> None:
        if e.outcome != "answered":
            return
        if e.command:
            self.book.mark(f, e.command, ANSWERED, self.counts.answered)
        f.sequences = None  # a conversation happened: sequences end

    def _replied(self, f: ProspectFacts, e: ev.Replied, ts: int) -> None:
        ch = CHANNEL_INDEX[e.channel]
        if ch == self._sms and e.text is not None:
            word = e.text.strip().upper()
            if word in self._stop:
                f.flags |= SMS_OUT
                self._opted_out(f, ch)
                f.sequences = None
                return
            if word in self._start or (word in self._resume and f.flags & SMS_OUT):
                f.flags &= ~SMS_OUT
                return
        if e.sentiment == "out_of_office":
            return
        c = self.counts
        c.replies[ch] += 1
        self.book.daily(ts)[N_CHANNELS + ch] += 1
        for name in f.sequences or ():
            self._sequence_row(name)[EXITED_BY_REPLY] += 1
        f.sequences = None
        if f.flags & REPLIED and ts >= f.first_reply_ts:
            return
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

    def _opt_out(self, f: ProspectFacts, e: ev.OptOut, ts: int) -> None:
        if e.channel == "all":
            self._stopped(f)
            return
        ch = CHANNEL_INDEX[e.channel]
        if ch == self._sms:
            f.flags |= SMS_OUT
        self._opted_out(f, ch)

    def _do_not_contact(self, f: ProspectFacts, e: ev.DoNotContact, ts: int) -> None:
        self._stopped(f)

    def _complaint(self, f: ProspectFacts, e: ev.Complaint, ts: int) -> None:
        self.counts.complaints += 1
        f.sequences = None

    def _meeting_booked(self, f: ProspectFacts, e: ev.MeetingBooked, ts: int) -> None:
        f.sequences = None
        self.book.conversion(f, ts)

    def _deal_closed(self, f: ProspectFacts, e: ev.DealClosed, ts: int) -> None:
        f.sequences = None
        if e.won:
            f.flags |= CUSTOMER
            self.book.conversion(f, ts)

    def _enroll(self, f: ProspectFacts, e: ev.Enroll, ts: int) -> None:
        name = e.sequence
        if name not in self.steps or f.flags & CUSTOMER:
            return  # unknown (rejected upstream) or refused (`sequence.customer`)
        if f.sequences and name in f.sequences:
            return  # already running: the engine changes nothing
        f.sequences = [*(f.sequences or ()), name]
        self._sequence_row(name)[ENROLLED] += 1

    def _unenroll(self, f: ProspectFacts, e: ev.Unenroll, ts: int) -> None:
        if e.sequence is None:
            f.sequences = None
        elif f.sequences and e.sequence in f.sequences:
            _discard(f, e.sequence)

    def _touch_request(self, f: ProspectFacts, e: ev.TouchRequest, ts: int) -> None:
        row = self.counts.campaigns.get(e.campaign)
        if row is None:
            row = self.counts.campaigns[e.campaign] = [0, 0, 0, 0]
        row[REQUESTED] += 1

    def _profile(self, f: ProspectFacts, e: ev.Profile, ts: int) -> None:
        if e.email is None and e.lead_source is None and e.account is None:
            return
        old = f.contact or Contact()
        f.contact = Contact(
            e.email if e.email is not None else old.email,
            e.lead_source if e.lead_source is not None else old.lead_source,
            e.account if e.account is not None else old.account,
        )

    # -- opt-outs, conversions --------------------------------------------------------------------

    def _opted_out(self, f: ProspectFacts, ch: int) -> None:
        bit = 1 << ch
        if not f.opted & bit:
            f.opted |= bit
            self.counts.opt_outs[ch] += 1

    def _stopped(self, f: ProspectFacts) -> None:
        f.sequences = None
        if not f.flags & STOPPED:
            f.flags |= STOPPED
            self.counts.stopped += 1

    def _sequence_row(self, name: str) -> list[int]:
        row = self.counts.sequences.get(name)
        if row is None:
            row = self.counts.sequences[name] = [0, 0, 0]
        return row


def _discard(f: ProspectFacts, name: str) -> None:
    kept = [n for n in f.sequences or () if n != name]
    f.sequences = kept or None
