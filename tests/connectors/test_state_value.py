"""A state key's value with the facts folded in (`connectors.state_value`): the state and the
facts come back exactly; a reader that knows nothing of facts (the version before, rolled back
to) reads the state from the whole value; a later version that appends a field to the state
reads that field, not the facts; a value without facts is a state alone."""

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from connectors.state_value import FACTS_EXT, join, split
from operators.state import ProspectState, decode_state, encode_state

states = st.builds(
    ProspectState,
    prospect=st.text(max_size=40),
    clock=st.integers(0, 2**62),
    seq=st.integers(0, 2**31),
    segment=st.none() | st.text(max_size=10),
    pages=st.none() | st.lists(st.text(max_size=30), max_size=5),
)
# Every size class of MessagePack's ext header, at its edges.
edges = [b"x" * n for n in (0, 255, 256, 65_535, 65_536)]
facts = st.binary(max_size=300) | st.sampled_from(edges)


class _Later(ProspectState, array_like=True, gc=False):
    """A later version's state: one more field appended."""

    later: int = 7


class _Array(msgspec.Struct, array_like=True):
    """A short array value: the smaller headers of MessagePack (fixarray) are handled too."""

    a: int = 1
    b: str = "x"


@given(states, facts)
def test_the_state_and_the_facts_come_back_exactly(state: ProspectState, data: bytes) -> None:
    encoded = encode_state(state)
    value = join(encoded, data)
    assert split(value) == (encoded, data)
    assert decode_state(value) == state, "a reader ignoring the facts reads the state"
    assert msgspec.msgpack.decode(value)[-1] == msgspec.msgpack.Ext(FACTS_EXT, data)
    later = msgspec.msgpack.decode(split(value)[0], type=_Later)
    assert later.later == 7, "a later field reads its default, not the facts"
    assert split(encoded) == (encoded, None), "a state alone has no facts"


@given(st.integers(1, 9), st.text(max_size=20), facts)
def test_short_arrays_too(a: int, b: str, data: bytes) -> None:
    encoded = msgspec.msgpack.encode(_Array(a, b))
    assert encoded[0] == 0x92
    assert split(join(encoded, data)) == (encoded, data)


def test_a_last_element_that_is_not_our_extension_is_the_states() -> None:
    other = msgspec.msgpack.encode([1, msgspec.msgpack.Ext(FACTS_EXT + 1, b"x")])
    assert split(other) == (other, None)
    plain = msgspec.msgpack.encode([1, b"\xc7\x01\x11x"])  # the bytes of our header, as data
    assert split(plain) == (plain, None)
    assert split(msgspec.msgpack.encode([])) == (b"\x90", None)
