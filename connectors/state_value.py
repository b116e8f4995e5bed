"""A state key's value: the prospect's state and, with the scorecard on, its facts in one value.

The state is a MessagePack array (`operators.state.ProspectState` is `array_like`). The facts
(`operators.scorecard_facts.ProspectFacts`, MessagePack too) ride as one more element at its
end, wrapped in an extension of type `FACTS_EXT`: the array's count goes up by one and the
element is appended, so nothing else in the bytes moves.

Why one value rather than a key of its own (`prefix:facts:{p}`, what the first live scorecard
wrote): a key per prospect more cost Redis a SET (or an EXPIRE) and a keyspace entry with a TTL
per checkpointed prospect, and the sink a key name and two arguments each; measured with
benchmarks/bench_scorecard_live.py, that was about half of what live counting cost the flow.
Folded in, the facts live and expire with their state, with no TTL of their own to refresh.

Compatibility both ways: msgspec ignores trailing elements it has no field for, so a version
that does not know the facts decodes the state from the whole value unchanged (a rollback reads
its states; its facts come from the older keys, as the README says); and `split` takes the
facts off before decoding, so a later version that appends a field to the state reads the
state, not the facts, in that position. A value without the
extension is a state written with the scorecard off or by an older version, whose facts, if
any, are in the old key (`connectors.checkpoint` and `connectors.scorecard_store` read it).
"""

from collections.abc import Callable, Mapping
from typing import Final

import msgspec

# An extension type of our own (0-127 are the application's): nothing else in a state uses one.
FACTS_EXT: Final = 17

_ITEMS: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])


def join(state: bytes, facts: bytes) -> bytes:
    """The value holding `state` (an encoded MessagePack array) with `facts` appended."""
    size = len(facts)
    if state[0] == 0xDC and not state[1] and size <= 0xFFFF:  # the usual case, spelled out
        # (it runs once per state written): an array16 of at most 255 elements, its count and
        # the ext header looked up, the state's elements not copied before the one join
        head = _ARRAY16[state[2] + 1]
        ext = _EXT8[size] if size <= 0xFF else b"\xc8" + size.to_bytes(2, "big") + _EXT_CODE
        return b"".join((head, memoryview(state)[3:], ext, facts))
    count, start = _array_header(state)
    return b"".join((_header(count + 1), state[start:], _ext_header(len(facts)), facts))


def split(value: bytes) -> tuple[bytes, bytes | None]:
    """The state and the facts (None: the value holds none) of a state key's value.

    Raises `msgspec.DecodeError` for bytes that are not a MessagePack array."""
    items = _ITEMS.decode(value)
    if not items:
        return value, None
    last = bytes(items[-1])
    if last[0] not in _EXT_HEADS:
        return value, None
    ext = msgspec.msgpack.decode(last)
    if not isinstance(ext, msgspec.msgpack.Ext) or ext.code != FACTS_EXT:
        return value, None
    count, start = _array_header(value)
    state = _header(count - 1) + value[start : len(value) - len(last)]
    return state, bytes(ext.data)


def legacy_facts(
    read: Mapping[str, tuple[bytes, bytes | None] | None],
    load: Callable[[list[str]], list[bytes | None]],
    facts_key: Callable[[str], str],
) -> dict[str, bytes]:
    """The facts of the states in `read` (each `split` from its value; None: no state) that
    hold none, from the key a version before kept them in (`facts_key`), read with one `load`
    for those states alone; only those found."""
    older = [p for p, saved in read.items() if saved is not None and saved[1] is None]
    if not older:
        return {}
    found = zip(older, load([facts_key(p) for p in older]), strict=True)
    return {prospect: facts for prospect, facts in found if facts is not None}


_EXT_CODE: Final = bytes((FACTS_EXT,))
_ARRAY16: Final = tuple(b"\xdc" + n.to_bytes(2, "big") for n in range(257))  # array16 heads
_EXT8: Final = tuple(bytes((0xC7, n, FACTS_EXT)) for n in range(256))  # ext 8 heads

# fixext 1/2/4/8/16, ext 8/16/32
_EXT_HEADS: Final = frozenset({0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xC7, 0xC8, 0xC9})


def _array_header(data: bytes) -> tuple[int, int]:
    """(element count, where the first element starts) of a MessagePack array."""
    head = data[0] if data else -1
    if 0x90 <= head <= 0x9F:
        return head & 0x0F, 1
    if head == 0xDC:
        return int.from_bytes(data[1:3], "big"), 3
    if head == 0xDD:
        return int.from_bytes(data[1:5], "big"), 5
    msg = "a state's value is not a MessagePack array"
    raise msgspec.DecodeError(msg)


def _ext_header(size: int) -> bytes:
    """ext 8/16/32 (never fixext: any size may use these, and one rule is simpler)."""
    if size <= 0xFF:
        return bytes((0xC7, size, FACTS_EXT))
    if size <= 0xFFFF:
        return b"\xc8" + size.to_bytes(2, "big") + bytes((FACTS_EXT,))
    return b"\xc9" + size.to_bytes(4, "big") + bytes((FACTS_EXT,))


def _header(count: int) -> bytes:
    if count <= 0x0F:
        return bytes((0x90 | count,))
    if count <= 0xFFFF:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")
