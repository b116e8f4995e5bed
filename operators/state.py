"""Per-prospect state: small, bounded, and encodable as MessagePack for Redis checkpoints.

Memory matters (target under 1 KiB per prospect in memory), so fields default to None or 0 and
are filled only when used, channel sets are bitmasks, times are integer milliseconds, recent event
ids are fixed-size hashes packed into one `bytes`, and the Struct is `array_like` (positional on
the wire, so no field names in Redis) and `gc=False` (it never holds a cycle). The records it
holds (touches, pending candidates, enrollments, the last reply) are named Structs of the same
kind (`operators.state_records`); a checkpoint from before they were named is migrated when
read (`decode_state`, `operators.state_legacy`).
"""

import bisect
import hashlib
from typing import Final

import msgspec
from msgspec import Struct

from operators.state_records import AUTO, Enrollment, Pending, Reply, Touch

__all__ = [
    "AUTO",
    "Enrollment",
    "Pending",
    "ProspectState",
    "Reply",
    "Touch",
    "add_pending",
    "command_key",
    "decode_state",
    "encode_state",
    "next_due",
    "pending_due",
    "seen_before",
]

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
    return item.due


def next_due(state: ProspectState) -> int | None:
    """When the soonest pending item is due (ms), None if nothing is pending."""
    return state.pending[0].due if state.pending else None


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(ProspectState)


def encode_state(state: ProspectState) -> bytes:
    """MessagePack bytes for the checkpoint store."""
    return _ENCODER.encode(state)


def decode_state(data: bytes) -> ProspectState:
    """Inverse of `encode_state`; a checkpoint in the layout before issue 11 is migrated.

    The current layout is tried first: only a state with pending items in the old 7-tuple layout
    fails it (an old `Pending` has 7 elements, a current one 11), and is then read in the old
    layout and migrated (`operators.state_legacy`). Every other record kept its layout.
    """
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError as current:
        # Imported here: state_legacy builds its old layout from ProspectState.
        from operators.state_legacy import decode_legacy

        try:
            return decode_legacy(data)
        except msgspec.ValidationError:
            raise current from None  # not an old checkpoint either: say what is wrong now
