"""A prospect's touches in the scorecard: the ledger, hindsight, distinct prospects.

Part of `operators.scorecard` (the `Tally` owns one `TouchBook`): every change to what counts as
a touch goes through here, because each one may change more than one number. A touch added,
released by `touch_failed` or moved to its backup channel changes the channel's touches, the
prospect's first and last touch, its touches before the first reply (when it came before it),
the credit of recent conversions (`credit`: the last touch strictly before, under 30 days), and
the distinct-prospect counts, kept as the difference the prospect's `shape` makes, and the
touches of the touch's UTC day (the `daily:` fields, for the page's plots).

Each method says whether it changed the prospect's facts, where it may not have (`mark`), so the
live flow re-encodes only facts that changed (`dataflows.live_logic`).
"""

from typing import Final

from operators.scorecard_facts import (
    ANSWERED,
    ANSWERED_AT,
    ATTRIBUTION_MS,
    CONVERSIONS_AT,
    CONVERTED,
    DELIVERED,
    DELIVERED_AT,
    NONE,
    OPENED,
    OPENED_AT,
    RELEASED,
    REPLIED,
    TOUCHED,
    Conversion,
    FieldNames,
    Fields,
    ProspectFacts,
    Touch,
    count,
    touch_key,
    zeros,
)
from operators.timeutil import DAY_MS


def shape(f: ProspectFacts) -> int:
    """What the distinct-prospect counts see of a prospect, as one int (compared and stored
    per touch, so no tuple): its class (`_CLASSES`: replied or not, touched on 0, 1 or 2+
    channels) and, once it replied, its touches before the first reply (`divmod(shape, 6)`
    gives them back: (touches before the reply, class))."""
    t = f.touches
    channels = len(t) - t.count(0) if t else 0
    if f.flags & REPLIED:
        return f.to_reply * 6 + 3 + (channels if channels < 2 else 2)
    return channels if channels < 2 else 2


def _class_fields(touched_on: int, replied: int) -> dict[str, int]:
    """The distinct-prospect fields a prospect of one class counts in (1 or 0)."""
    multi, single = int(touched_on == 2), int(touched_on == 1)
    return {
        "prospects_touched": int(touched_on > 0),
        "prospects_replied": replied,
        "multi_touched": multi,
        "multi_replied": multi & replied,
        "single_touched": single,
        "single_replied": single & replied,
    }


_CLASSES: Final = tuple(_class_fields(code % 3, code // 3) for code in range(6))
# For each pair of classes (before, after): the fields that change, and by how much.
_MOVES: Final = tuple(
    tuple(
        tuple((name, after[name] - before[name]) for name in before if after[name] != before[name])
        for after in _CLASSES
    )
    for before in _CLASSES
)


class TouchBook:
    """Touches, deliveries, opens, answers and conversions of each prospect, counted into
    `fields` (the tally's current ones: `Tally.take` swaps them)."""

    def __init__(self, names: FieldNames, *, ledger_days: int, ledger_max: int) -> None:
        self.fields: Fields = {}
        self.names = names
        self._ledger_ms = ledger_days * DAY_MS
        self._ledger_max = ledger_max

    # -- touches --------------------------------------------------------------------------------

    def add(self, f: ProspectFacts, touch: Touch) -> None:
        ch, ts = touch.channel, touch.ts
        touches = f.touches
        early = f.flags & REPLIED and ts < f.first_reply_ts  # a late touch, before the reply
        # The prospect's shape changes only with a new channel or a touch before the reply.
        before = shape(f) if early or touches is None or not touches[ch] else None
        if touches is None or not any(touches):
            touches = f.touches = touches or zeros()
            f.first_touch = f.last_touch = ts
        else:
            if ts < f.first_touch:
                f.first_touch = ts
            if ts > f.last_touch:
                f.last_touch = ts
        touches[ch] += 1
        c = self.fields
        c[TOUCHED[ch]] = c.get(TOUCHED[ch], 0) + 1
        field = self.names.day(ts)[ch]
        c[field] = c.get(field, 0) + 1
        if early:
            f.to_reply += 1
        ledger = f.ledger
        if ledger is None:
            ledger = f.ledger = [touch]
        else:
            ledger.append(touch)
        if ts > f.clock:
            f.clock = ts
        if f.conversions:
            self.recredit(f)
            self.prune(f)
        elif ledger[0].ts <= f.clock - self._ledger_ms or len(ledger) > self._ledger_max:
            self.prune(f)  # (checked here: a call per touch for nothing to prune cost more)
        if before is not None:
            self.reshaped(before, shape(f))

    def release(self, f: ProspectFacts, t: Touch) -> None:
        before = shape(f)
        t.marks |= RELEASED
        assert f.touches is not None  # the entry was counted
        f.touches[t.channel] -= 1
        c = self.fields
        count(c, TOUCHED[t.channel], -1)
        count(c, self.names.day(t.ts)[t.channel], -1)
        if f.flags & REPLIED and t.ts < f.first_reply_ts:
            f.to_reply -= 1
        if t.ts in (f.first_touch, f.last_touch):
            kept = [x.ts for x in f.ledger or () if not x.marks & RELEASED]
            if kept and t.ts == f.first_touch:
                f.first_touch = min(kept)  # nothing older was dropped while this one was kept
            if kept and t.ts == f.last_touch:
                f.last_touch = max(kept)
        if f.conversions:
            self.recredit(f)
        self.reshaped(before, shape(f))

    def move(self, f: ProspectFacts, t: Touch, ch: int) -> None:
        """The sender reported the command on another channel (its backup): it counts there,
        and so do its delivery, open and answer."""
        before = shape(f)
        c = self.fields
        old = t.channel
        if not t.marks & RELEASED:
            assert f.touches is not None
            f.touches[old] -= 1
            f.touches[ch] += 1
            count(c, TOUCHED[old], -1)
            count(c, TOUCHED[ch], 1)
            day = self.names.day(t.ts)
            count(c, day[old], -1)
            count(c, day[ch], 1)
        for mark, names in _MARKS:
            if t.marks & mark:
                count(c, names[old], -1)
                count(c, names[ch], 1)
        t.channel = ch
        if f.conversions:
            self.recredit(f)
        self.reshaped(before, shape(f))

    def mark(
        self, f: ProspectFacts, command: str | None, mark: int, names: tuple[str, ...]
    ) -> bool:
        """A delivery, open or answer naming a command: counted once per command (`names`:
        the count's field per channel). False if it named nothing new (the facts unchanged)."""
        if not command:
            return False
        entry = find(f, touch_key(command))
        if entry is None or entry.marks & mark:
            return False
        entry.marks |= mark
        field = names[entry.channel]
        self.fields[field] = self.fields.get(field, 0) + 1
        return True

    def prune(self, f: ProspectFacts) -> None:
        """Keep the ledger to `ledger_days` before the latest touch or conversion (`clock`) and
        `ledger_max` entries."""
        ledger = f.ledger
        if not ledger:
            return
        since = f.clock - self._ledger_ms
        if ledger[0].ts <= since or len(ledger) > self._ledger_max:
            kept = [t for t in ledger if t.ts > since][-self._ledger_max :]
            f.ledger = kept or None
        if f.conversions and f.conversions[0].ts <= since:
            f.conversions = [x for x in f.conversions if x.ts > since] or None

    def conversion(self, f: ProspectFacts, ts: int) -> None:
        f.flags |= CONVERTED
        if ts > f.clock:
            f.clock = ts
        ch = credit(f.ledger, ts)
        if ch != NONE:
            count(self.fields, CONVERSIONS_AT[ch], 1)
        f.conversions = [*(f.conversions or ()), Conversion(ts, ch)]
        self.prune(f)

    def recredit(self, f: ProspectFacts) -> None:
        """The ledger changed: credit each recent conversion to its last touch again."""
        c = self.fields
        for conv in f.conversions or ():
            ch = credit(f.ledger, conv.ts)
            if ch != conv.channel:
                if conv.channel != NONE:
                    count(c, CONVERSIONS_AT[conv.channel], -1)
                if ch != NONE:
                    count(c, CONVERSIONS_AT[ch], 1)
                conv.channel = ch

    # -- distinct prospects -----------------------------------------------------------------------

    def reshaped(self, before: int, after: int) -> None:
        """Count the difference a prospect's change of `shape` makes (only what changes is
        counted: a batch's fields stay sparse)."""
        if before == after:
            return
        q0, k0 = divmod(before, 6)
        q1, k1 = divmod(after, 6)
        c = self.fields
        if q1 != q0:
            c["touches_to_reply"] = c.get("touches_to_reply", 0) + q1 - q0
        if k1 != k0:
            for name, n in _MOVES[k0][k1]:
                c[name] = c.get(name, 0) + n


_MARKS: Final = ((DELIVERED, DELIVERED_AT), (OPENED, OPENED_AT), (ANSWERED, ANSWERED_AT))


def find(f: ProspectFacts, key: int) -> Touch | None:
    """The ledger's entry for a command key (newest first: callbacks follow their command)."""
    for t in reversed(f.ledger or ()):
        if t.key == key:
            return t
    return None


def credit(ledger: list[Touch] | None, ts: int) -> int:
    """The channel of the last touch strictly before `ts`, if less than 30 days before it.

    Touches of one instant: a manual touch is taken as after the commands of that instant, and
    otherwise the one learnt last (commands in the order the engine emitted them).
    """
    best: Touch | None = None
    best_key = (0, 0)
    for t in ledger or ():
        if t.marks & RELEASED or t.ts >= ts:
            continue
        key = (t.ts, 0 if t.key else 1)
        if best is None or key >= best_key:
            best, best_key = t, key
    if best is None or ts - best.ts >= ATTRIBUTION_MS:
        return NONE
    return best.channel
