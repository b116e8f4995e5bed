"""The scorecard's data (`operators.scorecard`): global counts and per-prospect facts.

Both are msgspec Structs, so they checkpoint as MessagePack with the prospect's state (live) and
sum across workers (`Counts.merge`, `Counts.add`). Per-prospect facts are positional on the wire
(`array_like`) and leave unused fields empty: a prospect never touched is a few bytes; one with a
few touches and callbacks about a hundred (benchmarks/bench_report.py measures it). Fields are
only ever appended, so facts written by an older version still decode.
"""

from typing import Any, Final

import msgspec
from msgspec import Struct, field

from operators.events import CHANNELS
from operators.state import command_key
from operators.timeutil import DAY_MS, format_ts

NONE: Final = -1
N_CHANNELS: Final = len(CHANNELS)
ATTRIBUTION_MS: Final = 30 * DAY_MS  # a conversion is credited to a touch less than 30 days old
LEDGER_DAYS: Final = 45
LEDGER_MAX: Final = 64
LAST_DECISIONS: Final = 10  # decision records kept per prospect, for `touchflow inspect`
DECISION_CHANNELS: Final = (*CHANNELS, "rep")
VERDICTS: Final = ("sent", "deferred", "blocked")

# Touch.marks
RELEASED: Final = 1  # a `touch_failed` named the command: not a touch
DELIVERED: Final = 2
OPENED: Final = 4
ANSWERED: Final = 8

# ProspectFacts.flags
REPLIED: Final = 1  # has a counted reply
STOPPED: Final = 2  # `opt_out` all or `do_not_contact` (counted once)
SMS_OUT: Final = 4  # opted out of sms now (YES lifts it, as START does)
CUSTOMER: Final = 8  # a won deal: enrollments are refused
CONVERTED: Final = 16  # a meeting booked or a deal won

# Counts.sequences values, Counts.campaigns values, Counts.held_back values (by index).
ENROLLED, COMPLETED, EXITED_BY_REPLY = 0, 1, 2
REQUESTED, SENT, DEFERRED, BLOCKED = 0, 1, 2, 3
HELD_DEFERRED, HELD_BLOCKED = 0, 1


def zeros() -> list[int]:
    return [0] * N_CHANNELS


def day_of(ms: int) -> int:
    """The UTC day (days since the epoch) of an instant: `Counts.daily`'s key."""
    return ms // DAY_MS


class Counts(Struct, kw_only=True, gc=False):
    """Every count of the scorecard; partial counts (workers, shards) merge by addition."""

    touches: list[int] = field(default_factory=zeros)
    delivered: list[int] = field(default_factory=zeros)
    opened: list[int] = field(default_factory=zeros)
    answered: list[int] = field(default_factory=zeros)
    replies: list[int] = field(default_factory=zeros)
    opt_outs: list[int] = field(default_factory=zeros)  # distinct prospects per channel
    conversions: list[int] = field(default_factory=zeros)  # credited, per channel
    stopped: int = 0  # distinct prospects with an `opt_out` all or a `do_not_contact`
    complaints: int = 0
    prospects_touched: int = 0
    prospects_replied: int = 0
    touches_to_reply: int = 0  # summed over prospects who replied
    multi_touched: int = 0  # prospects touched on two or more channels
    multi_replied: int = 0
    single_touched: int = 0  # prospects touched on exactly one channel
    single_replied: int = 0
    sequences: dict[str, list[int]] = field(default_factory=dict)  # enrolled, completed, exited
    campaigns: dict[str, list[int]] = field(default_factory=dict)  # requested, sent, def., bl.
    held_back: dict[str, list[int]] = field(default_factory=dict)  # deferred, blocked
    # Per UTC day (`day_of`): touches per channel, then replies per channel (2 x N_CHANNELS).
    daily: dict[int, list[int]] = field(default_factory=dict)

    def add(self, other: "Counts") -> None:
        """Add `other` into these counts, in place: the live flow sums a checkpoint chunk's
        per-batch deltas with it, so it skips what is zero (most of a delta) cheaply, rather
        than walking every field as `merge` does (benchmarks/bench_scorecard_live.py)."""
        o = other
        for mine, theirs in (
            (self.touches, o.touches),
            (self.delivered, o.delivered),
            (self.opened, o.opened),
            (self.answered, o.answered),
            (self.replies, o.replies),
            (self.opt_outs, o.opt_outs),
            (self.conversions, o.conversions),
        ):
            if theirs != _ZEROS:
                for i, n in enumerate(theirs):
                    mine[i] += n
        if (
            o.stopped
            or o.complaints
            or o.prospects_touched
            or o.prospects_replied
            or o.touches_to_reply
            or o.multi_touched
            or o.multi_replied
            or o.single_touched
            or o.single_replied
        ):
            for name in SCALARS:
                n = getattr(o, name)
                if n:
                    setattr(self, name, getattr(self, name) + n)
        if o.sequences:
            for key, row in o.sequences.items():
                _add_row(self.sequences, key, row)
        if o.campaigns:
            for key, row in o.campaigns.items():
                _add_row(self.campaigns, key, row)
        if o.held_back:
            for key, row in o.held_back.items():
                _add_row(self.held_back, key, row)
        if o.daily:
            for day, row in o.daily.items():
                _add_row(self.daily, day, row)

    @classmethod
    def zero(cls) -> "Counts":
        """Fresh zero counts, faster than `Counts()` (no default factories to call): live mode
        makes one per counted batch."""
        return cls(
            touches=[0, 0, 0, 0, 0],
            delivered=[0, 0, 0, 0, 0],
            opened=[0, 0, 0, 0, 0],
            answered=[0, 0, 0, 0, 0],
            replies=[0, 0, 0, 0, 0],
            opt_outs=[0, 0, 0, 0, 0],
            conversions=[0, 0, 0, 0, 0],
            sequences={},
            campaigns={},
            held_back={},
            daily={},
        )

    def merge(self, other: "Counts") -> "Counts":
        """The sum of two partial counts (neither is changed)."""
        merged = Counts()
        for name in Counts.__struct_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, int):
                setattr(merged, name, mine + theirs)
            elif isinstance(mine, list):
                setattr(merged, name, [a + b for a, b in zip(mine, theirs, strict=True)])
            else:
                rows = {k: list(v) for k, v in mine.items()}
                for k, v in theirs.items():
                    row = rows.setdefault(k, [0] * len(v))
                    rows[k] = [a + b for a, b in zip(row, v, strict=True)]
                setattr(merged, name, rows)
        return merged


_ZEROS: Final = [0] * N_CHANNELS
COUNT_LISTS: Final = (
    "touches",
    "delivered",
    "opened",
    "answered",
    "replies",
    "opt_outs",
    "conversions",
)
SCALARS: Final = tuple(
    name
    for name, default in zip(Counts.__struct_fields__, Counts.__struct_defaults__, strict=True)
    if default == 0
)


def _add_row(rows: dict[Any, list[int]], key: Any, row: list[int]) -> None:
    mine = rows.get(key)
    if mine is None:
        rows[key] = list(row)
    else:
        for i, n in enumerate(row):
            mine[i] += n


class Touch(Struct, array_like=True, gc=False):
    """A touch in a prospect's ledger: a command (its `command_key`) or a manual touch (key 0)."""

    key: int
    channel: int
    ts: int
    marks: int = 0  # RELEASED | DELIVERED | OPENED | ANSWERED


class Conversion(Struct, array_like=True, gc=False):
    """A recent conversion and the channel it is credited to now (NONE: none), kept so that a
    later release or backup fallback can move its credit."""

    ts: int
    channel: int


class ProspectFacts(Struct, array_like=True, gc=False):
    """What the scorecard knows of one prospect (positional on the wire, defaults left empty)."""

    touches: list[int] | None = None  # touches per channel index (not released)
    ledger: list[Touch] | None = None  # recent touches, in the order they were learnt
    flags: int = 0  # REPLIED | STOPPED | SMS_OUT | CUSTOMER | CONVERTED
    opted: int = 0  # bitmask of channels the prospect ever opted out of
    first_reply_ts: int = 0  # earliest counted reply (valid with REPLIED)
    first_reply_channel: int = NONE
    to_reply: int = 0  # touches strictly before the first counted reply
    first_touch: int = 0  # valid while any touch is counted
    last_touch: int = 0
    sequences: list[str] | None = None  # active enrollments
    conversions: list[Conversion] | None = None  # recent conversions, for re-crediting
    clock: int = 0  # latest time seen (ledger retention)
    decisions: list["Recent"] | None = None  # the last LAST_DECISIONS decision records
    contact: "Contact | None" = None  # profile fields the state does not keep, for inspect

    @property
    def total_touches(self) -> int:
        return sum(self.touches) if self.touches else 0


class Contact(Struct, array_like=True, gc=False):
    """The `profile` fields the engine has no use for (so the state does not keep them), kept
    for `touchflow inspect`: the latest value each profile event gave."""

    email: str | None = None
    lead_source: str | None = None
    account: str | None = None


class Recent(Struct, array_like=True, gc=False):
    """A decision record kept in the facts for `touchflow inspect`, compactly: indexes for the
    channel and the verdict, times in ms, no prospect (it is the facts' own) and no command id
    (33 bytes each, and an explanation needs the rule, not the id)."""

    ts: int
    channel: int  # index in DECISION_CHANNELS
    reason: str
    verdict: int  # index in VERDICTS
    rule: str | None = None
    until: str | None = None

    def record(self, prospect: str) -> dict[str, Any]:
        """As `touchflow inspect` shows it: the decision record's fields but `command`."""
        return {
            "prospect": prospect,
            "ts": format_ts(self.ts),
            "channel": DECISION_CHANNELS[self.channel],
            "reason": self.reason,
            "verdict": VERDICTS[self.verdict],
            "rule": self.rule,
            "until": self.until,
        }


_FACTS_ENCODER: Final = msgspec.msgpack.Encoder()
_FACTS_DECODER: Final = msgspec.msgpack.Decoder(ProspectFacts)


def encode_facts(facts: ProspectFacts) -> bytes:
    """MessagePack bytes, checkpointed next to the prospect's state."""
    return _FACTS_ENCODER.encode(facts)


def decode_facts(data: bytes) -> ProspectFacts:
    """Inverse of `encode_facts`."""
    return _FACTS_DECODER.decode(data)


def touch_key(command: str) -> int:
    """The ledger's key for a command id: its first 64 bits when it is one of ours (32 hex
    digits, `operators.emit.command_id`: already a hash, so no hashing again), else a hash of
    it. Never 0, which marks a manual touch."""
    if len(command) == 32:
        try:
            return int(command[:16], 16) or 1
        except ValueError:
            pass
    return command_key(command)
