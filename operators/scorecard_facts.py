"""The scorecard's data (`operators.scorecard`): counts as named fields, and per-prospect facts.

Counting goes into `Fields`, a sparse map from field names (`touches:email`, `campaigns:c:sent`,
`daily:2026-11-30:replies:sms`, ...) to integers: the live hash's own names, so a live batch's
counts go to Redis as they are, and partial counts of any split (batches, workers) sum by name.
`Counts` is the same numbers arranged for the view (`counts_from`). Per-prospect facts are
msgspec Structs, MessagePack-encoded with the prospect's state (live), positional on the wire
(`array_like`) with unused fields left empty: a prospect never touched is a few bytes; one with
a few touches and callbacks about a hundred (benchmarks/bench_report.py measures it). Fields are
only ever appended, so facts written by an older version still decode.
"""

from collections.abc import Iterable
from datetime import date
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


class Counts(Struct, kw_only=True, gc=False):
    """Every count of the scorecard, as the view reads them (`operators.scorecard_view`);
    partial counts (workers, shards) merge by addition. Counting itself goes into `Fields`."""

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
    # Per UTC day (days since the epoch): touches, then replies per channel (2 x N_CHANNELS).
    daily: dict[int, list[int]] = field(default_factory=dict)

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

# -- counting: the counts as named fields ---------------------------------------------------------
#
# The tally counts into `Fields`: a sparse map from the live hash's field names (the same names
# `connectors.scorecard_store` writes with HINCRBY) to integers. The live flow hands each batch's
# map to its checkpoint, so a batch costs what it counts (most count two or three fields), not a
# walk over every count; a checkpoint chunk sums its prospects' maps and writes them as they are;
# replay converts once, at the end (`counts_from`). Field names are made once and reused
# (`FieldNames`), so counting is a dict update on a string whose hash Python caches.

Fields = dict[str, int]
ROWS: Final[dict[str, tuple[str, ...]]] = {
    "sequences": ("enrolled", "completed", "exited_by_reply"),
    "campaigns": ("requested", "sent", "deferred", "blocked"),
    "held_back": ("deferred", "blocked"),
}
DAILY: Final = tuple(f"{kind}:{channel}" for kind in ("touches", "replies") for channel in CHANNELS)


def _per_channel(name: str) -> tuple[str, ...]:
    return tuple(f"{name}:{channel}" for channel in CHANNELS)


# Per channel index: the field of each per-channel count (`TOUCHED[ch]` is "touches:email"...).
TOUCHED: Final = _per_channel("touches")
DELIVERED_AT: Final = _per_channel("delivered")
OPENED_AT: Final = _per_channel("opened")
ANSWERED_AT: Final = _per_channel("answered")
REPLIES_AT: Final = _per_channel("replies")
OPT_OUTS_AT: Final = _per_channel("opt_outs")
CONVERSIONS_AT: Final = _per_channel("conversions")


def day_text(day: int) -> str:
    """A UTC day (days since the epoch) as the field names write it: YYYY-MM-DD."""
    return format_ts(day * DAY_MS)[:10]


class FieldNames:
    """The field names of named rows (a campaign's, a sequence's, a rule's) and of days, made
    once per name: the tally asks for them at every count."""

    __slots__ = ("_days", "campaigns", "held_back", "sequences")

    def __init__(self) -> None:
        self.campaigns: dict[str, tuple[str, ...]] = {}
        self.sequences: dict[str, tuple[str, ...]] = {}
        self.held_back: dict[str, tuple[str, ...]] = {}
        self._days: dict[int, tuple[str, ...]] = {}

    def campaign(self, name: str) -> tuple[str, ...]:
        """requested, sent, deferred, blocked (`REQUESTED`...)."""
        return self.campaigns.get(name) or self._row(self.campaigns, "campaigns", name)

    def sequence(self, name: str) -> tuple[str, ...]:
        """enrolled, completed, exited_by_reply (`ENROLLED`...)."""
        return self.sequences.get(name) or self._row(self.sequences, "sequences", name)

    def rule(self, name: str) -> tuple[str, ...]:
        """deferred, blocked (`HELD_DEFERRED`, `HELD_BLOCKED`)."""
        return self.held_back.get(name) or self._row(self.held_back, "held_back", name)

    def day(self, ms: int) -> tuple[str, ...]:
        """The day of `ms`: touches per channel index, then replies (`N_CHANNELS` + index)."""
        day = ms // DAY_MS
        names = self._days.get(day)
        if names is None:
            text = day_text(day)
            names = self._days[day] = tuple(f"daily:{text}:{column}" for column in DAILY)
        return names

    @staticmethod
    def _row(cache: dict[str, tuple[str, ...]], table: str, key: str) -> tuple[str, ...]:
        names = cache[key] = tuple(f"{table}:{key}:{column}" for column in ROWS[table])
        return names


def count(fields: Fields, name: str, n: int) -> None:
    """Add `n` to one field. `Fields` is a plain dict, not a `defaultdict`: a live batch counts
    into a fresh one, and a `defaultdict`'s first `+=` of a name (its `__missing__`, then two
    stores) cost twice `fields.get(name, 0) + n`; the tally's busiest counts are written out
    inline that way, the rest call this."""
    fields[name] = fields.get(name, 0) + n


def add_fields(total: Fields, delta: Fields) -> None:
    """Add `delta` into `total`, in place."""
    get = total.get
    for name, n in delta.items():
        total[name] = get(name, 0) + n


def counts_from(fields: Iterable[tuple[str, int]], sequences: Iterable[str] = ()) -> Counts:
    """The `Counts` of named fields (zeros and names it does not know, such as a newer
    version's or the hash's `as_of`, are left out); `sequences` get a row even if never
    counted."""
    counts = Counts()
    channel = {c: i for i, c in enumerate(CHANNELS)}
    for name in sequences:
        counts.sequences[name] = [0, 0, 0]
    for name, n in fields:
        if not n:
            continue
        kind, _, rest = name.partition(":")
        if not rest:
            if name in SCALARS:
                setattr(counts, name, getattr(counts, name) + n)
        elif kind in COUNT_LISTS and rest in channel:
            getattr(counts, kind)[channel[rest]] += n
        elif kind in ROWS:
            key, _, column = rest.rpartition(":")
            columns = ROWS[kind]
            if column in columns:
                rows = getattr(counts, kind)
                row = rows.setdefault(key, [0] * len(columns))
                row[columns.index(column)] += n
        elif kind == "daily":
            day, _, column = rest.partition(":")
            if column in DAILY:
                index = (date.fromisoformat(day) - _EPOCH_DAY).days
                row = counts.daily.setdefault(index, [0] * (2 * N_CHANNELS))
                row[DAILY.index(column)] += n
    return counts


_EPOCH_DAY: Final = date(1970, 1, 1)


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
    clock: int = 0  # latest touch or conversion learnt (ledger retention)
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
