"""The scorecard's data (`operators.scorecard`): global counts and per-prospect facts.

Both are msgspec Structs, so they checkpoint as MessagePack with the prospect's state (live) and
sum across workers (`Counts.merge`). Per-prospect facts are positional on the wire (`array_like`)
and leave unused fields empty: a prospect never touched is a few bytes; one with a few touches
and callbacks about a hundred (benchmarks/bench_report.py measures it).
"""

from typing import Final

from msgspec import Struct, field

from operators.events import CHANNELS
from operators.state import command_key
from operators.timeutil import DAY_MS

NONE: Final = -1
N_CHANNELS: Final = len(CHANNELS)
ATTRIBUTION_MS: Final = 30 * DAY_MS  # a conversion is credited to a touch less than 30 days old
LEDGER_DAYS: Final = 45
LEDGER_MAX: Final = 64

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

    @property
    def total_touches(self) -> int:
        return sum(self.touches) if self.touches else 0


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
