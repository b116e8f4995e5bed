"""Per-prospect state: small, bounded, and encodable as MessagePack for Redis checkpoints.

Memory matters (target under 1 KiB per prospect in memory), so fields default to None or 0 and
are filled only when used, channel sets are bitmasks, times are integer milliseconds, recent event
ids are fixed-size hashes packed into one `bytes`, and the Struct is `array_like` (positional on
the wire, so no field names in Redis) and `gc=False` (it never holds a cycle).
"""

import bisect
import hashlib
from typing import Final

import msgspec
from msgspec import Struct

# A touch in the history: (ts_ms, channel index, command key or 0, topic).
Touch = tuple[int, int, int, str | None]
# A deferred candidate touch: (due_ms, channel index or AUTO, reason, topic, cause event id,
# flags, first-considered ms). `first` is when it was first considered (a request's arrival or the
# close of its arbitration window, a step's scheduled time): the start of its deferral budget and
# the last key of the order of one instant (operators.order); a pause moves it with the item.
Pending = tuple[int, int, str, str | None, str, int, int]
# The last reply: (channel index, ts_ms, sentiment, text).
Reply = tuple[int, int, str | None, str | None]
# A sequence enrollment: (name, next step index, started ms, last sent ms or 0, enroll event id).
Enrollment = tuple[str, int, int, int, str]

AUTO: Final = -1
FLAG_EXEMPT: Final = 1  # answers the prospect's own action (rule 4)
FLAG_TRANSACTIONAL: Final = 2  # skips caps and cooldowns, never suppression/consent/quiet hours
FLAG_DEFERRABLE: Final = 4  # may wait for cap/gap capacity (requests), else blocked (triggers)
FLAG_SEQUENCE: Final = 8  # a sequence step (pending items re-enter the sequencer when due)
FLAG_HELD: Final = 16  # a pending item that is a deferral (it already has a decision record)
FLAG_ARBITRATE: Final = 32  # a request waiting for its arbitration window to close
FLAG_BRANCH: Final = 64  # a response-branch follow-up watching for an answer
FLAG_PAUSED: Final = 128  # moved by an out-of-office pause: `first` moved with it (rule 14)
PRIORITY_SHIFT: Final = 8  # a request's priority (0-9) is kept in the flags, bits 8-11
PRIORITY_MASK: Final = 0xF << PRIORITY_SHIFT
FLAG_ANSWERED: Final = 1 << 12  # a paused sms follow-up whose open was answered (a click)

_DIGEST: Final = 8


class ProspectState(Struct, array_like=True, gc=False):
    """Everything the rules know about one prospect; mutated in place by `operators.engine`."""

    prospect: str = ""
    clock: int = 0  # latest event time applied; "now" never goes backwards
    seq: int = 0  # per-prospect output sequence, for a canonical output order
    seen: bytes = b""  # ring of 8-byte hashes of recent event ids (idempotency)
    touches: list[Touch] | None = None  # touches inside the longest window, oldest first
    pending: list[Pending] | None = None  # deferred touches, due soonest first
    consent: int = 0  # bitmask of channels with consent granted
    opted_out: int = 0  # bitmask of channels opted out of
    bounced: int = 0  # bitmask of channels with a hard bounce
    complained: int = 0  # bitmask of channels with a complaint
    opted_out_all: bool = False
    do_not_contact: bool = False
    complaint_until: int = 0  # 90-day cooldown after a complaint
    negative_until: int = 0  # 90-day cooldown after a negative reply
    avoid: int = 0  # bitmask of channels the prospect asked us to avoid
    only: int = AUTO  # channel index the prospect asked to be reached on only, or AUTO
    prefer: int = AUTO  # channel index the prospect prefers, or AUTO
    timezone: str | None = None  # from the profile; wins over the phone number's zones
    phone: str | None = (
        None  # E.164; its zones are resolved only when a quiet-hour check needs them
    )
    region: str | None = None  # e.g. US-FL, for stricter quiet hours
    segment: str | None = None
    clicks: list[str] | None = None  # recent clicked urls, oldest first
    last_reply: Reply | None = None
    # -- orchestration (appended: older checkpoints decode with these defaults) --
    sequences: list[Enrollment] | None = None  # active enrollments
    engaged_at: int = 0  # last open, click or reply
    responded_at: int = 0  # last click, reply or answered call
    booked_at: int = 0  # last meeting booked
    sequence_until: int = 0  # cooldown.sequence: a sequence ran to its end
    deal_lost_until: int = 0  # cooldown.deal_lost
    customer: bool = False  # a deal was won: no more marketing sequences
    triggered: tuple[int, int, int] | None = None  # last fire of form, pricing, proposal triggers
    pages: list[str] | None = None  # recent page views, oldest first
    answers: tuple[int, ...] | None = None  # preference evidence: (hits, misses) per channel
    open_touches: tuple[int, ...] | None = None  # touches awaiting an answer (preference.Track)
    fatigue: tuple[int, int] | None = None  # (score in thousandths, ms): operators.fatigue
    # -- out-of-office pauses (appended: older checkpoints decode with these defaults) --
    paused_until: int = 0  # end of the latest out-of-office pause (rule 14)
    shifted: dict[str, int] | None = None  # per active sequence: ms pauses moved its schedule


def id_hash(text: str) -> bytes:
    """A fixed-size digest of an id: 8 bytes make a collision among 32 ids vanishingly rare."""
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST).digest()


def command_key(command_id: str) -> int:
    """The integer a touch keeps to match a later `touch_sent`/`touch_failed` to its command."""
    return int.from_bytes(id_hash(command_id), "big") or 1


def seen_before(state: ProspectState, event_id: str, capacity: int) -> bool:
    """Remember `event_id`; True if it was already among the last `capacity` ids."""
    digest = id_hash(event_id)
    ring = state.seen
    at = ring.find(digest)
    while at != -1:
        if at % _DIGEST == 0:
            return True
        at = ring.find(digest, at + 1)
    ring += digest
    if len(ring) > capacity * _DIGEST:
        ring = ring[-capacity * _DIGEST :]
    state.seen = ring
    return False


def add_pending(state: ProspectState, item: Pending) -> None:
    """Insert a deferred touch, keeping `pending` sorted by due time (stable: arrival order).

    Only the due time orders the list: which of several items due at one instant goes first is
    decided when they fire, by what each is (`operators.order`); the position breaks only the
    last tie.
    """
    pending = state.pending or []
    bisect.insort(pending, item, key=pending_due)
    state.pending = pending


def pending_due(item: Pending) -> int:
    return item[0]


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(ProspectState)


def encode_state(state: ProspectState) -> bytes:
    """MessagePack bytes for the checkpoint store."""
    return _ENCODER.encode(state)


def decode_state(data: bytes) -> ProspectState:
    """Inverse of `encode_state`."""
    return _DECODER.decode(data)
