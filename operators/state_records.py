"""The records a prospect's state is made of: touches, pending candidates, enrollments, replies.

Each is a msgspec `Struct(array_like=True, frozen=True, gc=False)`: positional on the wire (the
checkpoint's MessagePack holds no field names, so it stays as small as the tuples it replaced),
smaller in memory than a tuple of as many fields (no GC header), read by name (`p.kind`,
`p.priority`), and never part of a cycle.
`Touch`, `Reply` and `Enrollment` keep the exact arity and order of the tuples they replaced, so
a checkpoint written before them decodes unchanged. `Pending` changed its layout (it no longer
packs its kind, priority and lifecycle into one int): `operators.state_legacy` migrates the old
7-tuples when an old checkpoint is read.
"""

from collections.abc import Iterator
from enum import IntEnum, IntFlag
from typing import Any, Final

from msgspec import Struct

# A channel index meaning "the engine chooses" (`auto` requests, `preferred` steps).
AUTO: Final = -1


class Kind(IntEnum):
    """What a candidate touch is: decides how it is dispatched when due and how it ranks.

    A trigger answers the prospect's own action (rule 4: exempt from the gap, ranked first by
    rule 13) and is never deferred for capacity; the other kinds may wait for a cap or the gap.
    """

    TRIGGER = 0
    REQUEST = 1
    STEP = 2  # a sequence step: re-enters the sequencer when due
    FOLLOW_UP = 3  # a response-branch follow-up watching for an answer (escalation)


class Props(IntFlag):
    """Properties of a candidate beyond its kind: policy (transactional) and lifecycle.

    The values are the bits the old packed flags used, so a migrated item keeps its bits.
    """

    NONE = 0
    TRANSACTIONAL = 2  # skips caps and cooldowns, never suppression/consent/quiet hours
    HELD = 16  # a deferral: it already has a decision record
    ARBITRATING = 32  # a request waiting for its arbitration window to close
    PAUSED = 128  # moved by an out-of-office pause: `first` moved with it (rule 14)
    ANSWERED = 1 << 12  # a paused sms follow-up whose open was answered (a click)


# Each flag as a plain int, and every combination's member built once: an IntFlag operator
# (`props | Props.HELD`) costs ~0.4 us, `int(props) & HELD` ~0.04 us, on paths every event takes.
TRANSACTIONAL: Final = int(Props.TRANSACTIONAL)
HELD: Final = int(Props.HELD)
ARBITRATING: Final = int(Props.ARBITRATING)
PAUSED: Final = int(Props.PAUSED)
ANSWERED: Final = int(Props.ANSWERED)
_MEMBERS: dict[int, Props] = {}


def props_of(bits: int) -> Props:
    """The `Props` member of `bits` (bits of `Props` only)."""
    member = _MEMBERS.get(bits)
    if member is None:
        member = _MEMBERS[bits] = Props(bits)
    return member


def with_props(props: Props, add: int = 0, drop: int = 0) -> Props:
    """`props` with the bits `add` set and the bits `drop` cleared."""
    return props_of((int(props) | add) & ~drop)


class Exempt(IntFlag):
    """What `Rules.verdict` may skip for a candidate; the bits of the old packed flags."""

    NONE = 0
    OWN_ACTION = 1  # rule 4: answers the prospect's own action (a trigger)
    TRANSACTIONAL = 2


_OWN_ACTION: Final = int(Exempt.OWN_ACTION)


class Touch(Struct, array_like=True, frozen=True, gc=False):
    """A touch in the history: counted against caps and the gap (rule 5: from emission).

    `command` is `state.command_key` of the command it fulfils, 0 for a touch we did not command
    (a rep's manual email): such a touch is always new, never a confirmation.
    """

    ts: int  # ms
    channel: int  # channel index
    command: int
    topic: str | None

    def __getitem__(self, index: int) -> Any:
        """Transitional: the old tuple's positions, for `tests/dataflows/test_sender.py` (kept
        by others), which reads `t[2]`; remove once it reads `t.command`."""
        return (self.ts, self.channel, self.command, self.topic)[index]


class Reply(Struct, array_like=True, frozen=True, gc=False):
    """The prospect's last reply, for the message writer's context."""

    channel: int
    ts: int  # ms
    sentiment: str | None
    text: str | None


class Enrollment(Struct, array_like=True, frozen=True, gc=False):
    """One active sequence: which step comes next and the times its conditions count from."""

    sequence: str
    step: int  # index of the next step
    started: int  # ms
    last_sent: int  # ms of the last step that sent, 0 if none
    cause: str  # the enroll event's id: the cause of every step's command id


class Candidate(Struct, array_like=True, frozen=True, gc=False):
    """One candidate touch, as the decider sees it (and, with a due time, as `Pending` keeps it).

    `first` is when it was first considered (a request's arrival or the close of its arbitration
    window, a step's scheduled time): the start of its deferral budget and the last key of the
    order of one instant (`operators.order`). `priority` is a request's own (0-9, rule 13; 0 for
    the other kinds, whose rank comes from their kind). `sequence` and `step` name a step's
    sequence and its index; `reason` is the contract's text for the records.
    """

    channel: int  # channel index, or AUTO
    kind: Kind
    reason: str
    topic: str | None
    cause: str  # the id of the event that caused it: the command id derives from it
    first: int  # ms
    priority: int
    props: Props
    sequence: str | None
    step: int

    @property
    def exempt(self) -> int:
        """What the rules may skip for it, as `Exempt` bits (rule 4; transactional touches).

        A plain int: `Rules.verdict` is the hot path, and IntFlag operators cost ~0.4 us each.
        """
        own = _OWN_ACTION if self.kind is Kind.TRIGGER else 0
        return own | int(self.props) & TRANSACTIONAL

    @property
    def deferrable(self) -> bool:
        """Whether a cap or the gap defers it (a trigger's moment passes: it is blocked)."""
        return self.kind is not Kind.TRIGGER


class Pending(Candidate, array_like=True, frozen=True, gc=False):
    """A candidate waiting in `state.pending` until `due` (ms); the list is sorted by `due`."""

    due: int

    # Transitional: `operators.isolation` and `operators.scorecard_feed` (kept by others) still
    # read `pending[0][0]` and unpack a dropped timer as the old 7-tuple. Remove both methods
    # once they read `p.due` (or `state.next_due`) and `legacy_tuple(p)`.
    def __getitem__(self, index: int) -> Any:
        """The old 7-tuple's positions (`legacy_tuple`), for code not yet reading names."""
        return legacy_tuple(self)[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(legacy_tuple(self))


# The old packed flags (operators.state before issue 11): kinds and lifecycle in one int.
OLD_EXEMPT: Final = 1
OLD_DEFERRABLE: Final = 4
OLD_SEQUENCE: Final = 8
OLD_BRANCH: Final = 64
OLD_PRIORITY_SHIFT: Final = 8
_OLD_PROPS: Final = int(
    Props.TRANSACTIONAL | Props.HELD | Props.ARBITRATING | Props.PAUSED | Props.ANSWERED
)

OldPending = tuple[int, int, str, str | None, str, int, int]


def old_flags(p: Pending) -> int:
    """The packed flags the old layout kept for `p` (for a rollback, and the transitional view)."""
    kind = p.kind
    if kind is Kind.TRIGGER:
        bits = OLD_EXEMPT
    elif kind is Kind.STEP:
        bits = OLD_SEQUENCE | OLD_DEFERRABLE
    elif kind is Kind.FOLLOW_UP:
        bits = OLD_BRANCH | OLD_DEFERRABLE
    else:
        bits = OLD_DEFERRABLE
    return bits | int(p.props) | p.priority << OLD_PRIORITY_SHIFT


def legacy_tuple(p: Pending) -> OldPending:
    """`p` in the old 7-tuple layout: (due, channel, reason, topic, cause, flags, first)."""
    return (p.due, p.channel, p.reason, p.topic, p.cause, old_flags(p), p.first)


def from_legacy(item: OldPending) -> Pending:
    """An old 7-tuple as a `Pending`, with the same meaning.

    The kind comes from the old kind bits (sequence, branch, exempt; otherwise a request); a
    step's sequence and index from its reason (`sequence:<name>:<n>`, the only place the old
    layout kept them); the priority from bits 8-11.
    """
    due, channel, reason, topic, cause, flags, first = item
    sequence, step = None, 0
    if flags & OLD_SEQUENCE:
        kind = Kind.STEP
        _, sequence, number = reason.split(":")
        step = int(number) - 1
    elif flags & OLD_BRANCH:
        kind = Kind.FOLLOW_UP
    elif flags & OLD_EXEMPT:
        kind = Kind.TRIGGER
    else:
        kind = Kind.REQUEST
    return Pending(
        channel, kind, reason, topic, cause, first,
        flags >> OLD_PRIORITY_SHIFT & 0xF, props_of(flags & _OLD_PROPS), sequence, step, due,
    )  # fmt: skip


def waiting(c: Candidate, due: int, props: Props, first: int | None = None) -> Pending:
    """`c` waiting until `due` with `props` (and, if given, a new `first`)."""
    return Pending(
        c.channel, c.kind, c.reason, c.topic, c.cause, c.first if first is None else first,
        c.priority, props, c.sequence, c.step, due,
    )  # fmt: skip
