"""Checkpoints in the layout before issue 11: read and migrate them, or write one for a rollback.

Before issue 11 a pending item was a 7-tuple `(due, channel, reason, topic, cause, flags,
first)` whose `flags` packed its kind, policy properties, lifecycle and priority. Every other
record (touch, reply, enrollment) kept its arity and order when it became a named Struct, so
only `pending` needs migrating. A state is migrated when it is read (`decode_legacy`, called by
`state.decode_state` when the current layout does not fit) and written back in the current
layout at the next checkpoint; nothing has to be done to Redis beforehand.

A rollback to code from before issue 11 reads states with pending items only in the old layout:
`encode_legacy` writes one (for a script that rewrites the keys before such a rollback).
"""

from typing import Any, Final

import msgspec

from operators.state import ProspectState
from operators.state_records import OldPending, from_legacy, legacy_tuple


def _legacy_type() -> type:
    """ProspectState with `pending` in the old 7-tuple layout, field for field."""
    fields: list[tuple[str, object, object]] = []
    for f in msgspec.structs.fields(ProspectState):
        kind = list[OldPending] | None if f.name == "pending" else f.type
        fields.append((f.name, kind, f.default))
    return msgspec.defstruct("LegacyProspectState", fields, array_like=True, gc=False)


_LEGACY: Final = _legacy_type()
_DECODER: Final[msgspec.msgpack.Decoder[Any]] = msgspec.msgpack.Decoder(_LEGACY)
_ENCODER: Final = msgspec.msgpack.Encoder()


def decode_legacy(data: bytes) -> ProspectState:
    """A checkpoint whose pending items are old 7-tuples, as a current `ProspectState`."""
    old = _DECODER.decode(data)
    values = msgspec.structs.asdict(old)
    items = values.pop("pending")
    pending = [from_legacy(item) for item in items] if items is not None else None
    return ProspectState(pending=pending, **values)


def encode_legacy(state: ProspectState) -> bytes:
    """`state` in the old layout: what code from before issue 11 decodes."""
    values = msgspec.structs.asdict(state)
    items = state.pending
    values["pending"] = [legacy_tuple(p) for p in items] if items is not None else None
    return _ENCODER.encode(_LEGACY(**values))
